"""Baselines without adaptation (Table 1): CAP's criterion in the pretrained space, and DN2.

Shapes: N = bank items, n = queries, D = feature dimension, K = neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from cap.detectors.base import KNNDetector, check_is_fitted
from cap.detectors.search import chunk_slices, l2_knn_search, l2_normalize
from cap.detectors.settings import COUNT, Param
from cap.utils.errors import DataError


class _MemoryBankDetector(KNNDetector):
    """A detector whose fitting is storing the bank: scoring is a lookup in it."""

    def fit(
        self, X: np.ndarray, y: object = None, *, neighbors: np.ndarray | None = None
    ) -> _MemoryBankDetector:
        """Store the bank ``X`` (N, D); ``y`` and training ``neighbors`` are ignored."""
        self._validate_params()
        self.bank_ = self._check_bank(X, exclude_self=False)
        self.n_features_in_ = self.bank_.shape[1]
        return self


def cosine_gap_maps(z: np.ndarray, normal: np.ndarray, feature_maps: np.ndarray) -> np.ndarray:
    """The anomaly region of §4.6: |cos(z, f_hw) − cos(n, f_hw)| at every position.

    Parameters
    ----------
    z : array of shape (n, D)
        The images' pooled pretrained features (the global average of ``feature_maps``).
    normal : array of shape (n, D)
        Their normal representations (CAP: ẑⁿ of eq. 4; without adaptation: the mean of
        the K nearest normal features).
    feature_maps : array of shape (n, h, w, D)
        The backbone's last feature maps f before pooling.

    Returns
    -------
    float32 array of shape (n, h, w)
    """
    features = np.asarray(feature_maps, dtype=np.float32)  # (n, h, w, D)
    z, normal = (np.asarray(v, dtype=np.float32) for v in (z, normal))  # (n, D)
    if features.ndim != 4 or not features.shape[-1] == z.shape[1] == normal.shape[1]:
        raise DataError(
            f"anomaly maps need pooled features (n, D), their normal representations (n, D) "
            f"and feature maps (n, h, w, D); got {z.shape}, {normal.shape}, {features.shape}"
        )
    unit = l2_normalize(features.reshape(-1, features.shape[-1])).reshape(features.shape)

    def cosine(vectors: np.ndarray) -> np.ndarray:  # (n, h, w)
        return np.einsum("nhwd,nd->nhw", unit, l2_normalize(vectors))

    return np.abs(cosine(z) - cosine(normal))


class NoAdaptationDetector(_MemoryBankDetector, name="no_adaptation"):
    """CAP (no adaptation): s = 1 − cos(z, mean of its k nearest normal features).

    Eq. (8) with the identity as projection head and plain averaging: the
    neighbours are found by cosine similarity (§3.1) and averaged un-normalised.

    Parameters
    ----------
    k : int
        Number of nearest normal features averaged.
    """

    localizes: ClassVar[bool] = True
    declared_settings: ClassVar[Mapping[str, Param]] = {
        "k": Param("K, the number of nearest normal features averaged", COUNT),
    }

    def __init__(self, *, k: int = 32) -> None:
        self.k = k

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"k": 1}

    def anomaly_maps(
        self, X: np.ndarray, *, feature_maps: np.ndarray, neighbors: np.ndarray | None = None
    ) -> np.ndarray:
        """Anomaly maps (n, h, w) over the last feature maps (n, h, w, D) of queries ``X``
        (n, D): :func:`cosine_gap_maps` with the mean of the K nearest normal features."""
        check_is_fitted(self)
        X = self._check_queries(X)
        index = self._test_neighbors(X, neighbors)  # (n, K)
        return cosine_gap_maps(X, self.bank_[index].mean(axis=1), feature_maps)

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        index = self._test_neighbors(X, neighbors)  # (n, K)
        scores = np.empty(len(X), dtype=np.float32)
        for rows in chunk_slices(len(X), self.k * X.shape[1]):
            normal = self.bank_[index[rows]].mean(axis=1)  # (chunk, D)
            cosine = (l2_normalize(X[rows]) * l2_normalize(normal)).sum(axis=1)
            scores[rows] = 1.0 - cosine
        return scores


class DN2Detector(_MemoryBankDetector, name="dn2"):
    """DN2 (Bergman et al., 2020, as in PANDA's code): Σ of squared L2 distances to the k nearest.

    Neighbours are searched by Euclidean distance on the raw features, so a
    precomputed cosine ``neighbors`` array is accepted but ignored.

    With ``normalize=True`` the bank and the queries are first scaled to unit L2
    norm, which makes this cosine kNN: Σ over the k nearest of ‖ẑ − m̂‖² = 2 − 2 cos,
    the zero-training score of Mean-Shifted Contrastive Loss (Reiss & Hoshen, 2021,
    as in its code: an L2 search on normalised features). A query of norm zero has
    cosine 0 with everything and scores 2k, as an orthogonal item does.

    Parameters
    ----------
    k : int
        Number of nearest normal features.
    normalize : bool
        Scale bank and queries to unit L2 norm first (cosine kNN).

    Attributes
    ----------
    bank_ : float32 array of shape (N, D)
        The validated bank, as given.
    search_bank_ : float32 array of shape (N, D)
        The bank searched: ``bank_``, or its rows at unit norm with ``normalize``.
    n_features_in_ : int
        D.
    """

    declared_settings: ClassVar[Mapping[str, Param]] = {
        "k": Param("K, the number of nearest normal features", COUNT),
        "normalize": Param(
            "scale features to unit L2 norm first (cosine kNN, MSC's zero-training score)",
            "boolean",
        ),
    }

    def __init__(self, *, k: int = 2, normalize: bool = False) -> None:
        self.k = k
        self.normalize = normalize

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"k": 1}

    def fit(
        self, X: np.ndarray, y: object = None, *, neighbors: np.ndarray | None = None
    ) -> DN2Detector:
        """Store the bank ``X`` (N, D), normalised once when ``normalize``; ``y`` and
        ``neighbors`` are ignored."""
        super().fit(X)
        self.search_bank_ = l2_normalize(self.bank_) if self.normalize else self.bank_
        return self

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        queries = l2_normalize(X) if self.normalize else X
        squared_distances, _ = l2_knn_search(self.search_bank_, queries, k=self.k)  # (n, K)
        scores = squared_distances.sum(axis=1)
        if self.normalize:
            scores[~X.any(axis=1)] += self.k  # ‖0 − m̂‖² = 1, but 2 − 2 cos = 2
        return scores
