"""The local outlier factor (Breunig et al., 2000) on cosine-normalised features.

A kNN score (``dn2``, ``no_adaptation``) is a query's distance to its nearest normal
features; LOF divides it by how far those neighbours lie from theirs, so that a query in
a sparse but normal part of the bank (a class whose images spread over several modes) is
not flagged for its distance alone. Features are scaled to unit L2 norm first, so that
Euclidean neighbours are the cosine neighbours of the benchmark (§3.1); scikit-learn's
``LocalOutlierFactor(novelty=True)`` fits and scores.

Shapes: N = bank items, n = queries, D = feature dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from cap.detectors.base import BaseDetector
from cap.detectors.search import l2_normalize
from cap.detectors.settings import COUNT, Param
from cap.utils.validation import check_bank_size, check_features, check_nonzero_rows


class LOFDetector(BaseDetector, name="lof"):
    """The local outlier factor of each query among the unit-norm bank: the mean local
    reachability density of its k nearest normal features over its own; higher = more
    anomalous (1: as dense as its neighbours). Precomputed ``neighbors`` are accepted and
    ignored (scikit-learn searches, on the same cosine order).

    Parameters
    ----------
    k : int
        Neighbours whose density a query's is compared with (scikit-learn's default, 20).

    Attributes
    ----------
    model_ : sklearn.neighbors.LocalOutlierFactor
        Fitted on the unit-norm bank, with ``n_neighbors=k`` and ``novelty=True``.
    bank_ : float32 array of shape (N, D)
        The validated bank, as given.
    n_features_in_ : int
        D.
    """

    declared_settings: ClassVar[Mapping[str, Param]] = {
        "k": Param("K, the neighbours whose local density a query's is compared with", COUNT),
    }
    failed_checks: ClassVar[Mapping[str, str]] = {
        "check_estimators_dtypes": (
            "the check's integer copy of its data truncates a row to all zeros, which has no "
            "cosine and is refused (DataError)"
        ),
        "check_fit2d_1sample": (
            "k >= 1 neighbours need k + 1 >= 2 items: the DataError says so without the "
            "check's words ('1 sample')"
        ),
    }

    def __init__(self, *, k: int = 20) -> None:
        self.k = k

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"k": 1}

    def fit(self, X: np.ndarray, y: object = None, *, neighbors: Any = None) -> LOFDetector:
        """Fit on the unit-norm bank ``X`` (N, D), which must hold k + 1 items; ``y`` and
        ``neighbors`` are ignored."""
        from sklearn.neighbors import LocalOutlierFactor

        self._validate_params()
        bank = check_features(X, "bank")
        check_nonzero_rows(bank, "bank")
        check_bank_size(len(bank), self.k, exclude_self=True)
        lof = LocalOutlierFactor(n_neighbors=self.k, novelty=True)
        self.model_ = lof.fit(l2_normalize(bank))
        self.bank_ = bank
        self.n_features_in_ = bank.shape[1]
        return self

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        return -self.model_.score_samples(l2_normalize(X)).astype(np.float64)
