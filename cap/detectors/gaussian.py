"""A Gaussian model of the normal features: the Mahalanobis distance to their mean.

Rippel, Mertens and Merhof (2020), "Modeling the Distribution of Normal Data in
Pre-Trained Deep Features for Anomaly Detection" (ICPR 2020): fit one multivariate
Gaussian to the pretrained features of the normal class, with a Ledoit-Wolf shrunk
covariance, and score a query by its squared Mahalanobis distance to the mean.

Shapes: N = bank items, n = queries, D = feature dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from cap.detectors.base import NO_SPREAD, BaseDetector
from cap.detectors.search import chunk_slices
from cap.utils.validation import check_features, check_not_constant


class MahalanobisDetector(BaseDetector, name="mahalanobis"):
    """Squared Mahalanobis distance to the normal features' mean (Rippel et al., 2020).

    s(z) = (z − μ)ᵀ Σ⁻¹ (z − μ), with μ the bank's mean and Σ its Ledoit-Wolf
    shrunk covariance (``sklearn.covariance.LedoitWolf``), estimated and inverted
    in float64. No neighbours are used: a precomputed ``neighbors`` array is
    accepted by ``fit`` and ``anomaly_score`` and ignored.

    The method has no settings.

    Attributes
    ----------
    bank_ : float32 array of shape (N, D)
        The validated bank.
    location_ : float64 array of shape (D,)
        μ, the bank's mean.
    precision_ : float64 array of shape (D, D)
        Σ⁻¹, the inverse of the shrunk covariance.
    shrinkage_ : float
        Ledoit-Wolf's shrinkage coefficient in [0, 1].
    n_features_in_ : int
        D.
    """

    failed_checks: ClassVar[Mapping[str, str]] = {"check_fit2d_1sample": NO_SPREAD}

    def __init__(self) -> None:
        pass

    def fit(
        self, X: np.ndarray, y: object = None, *, neighbors: np.ndarray | None = None
    ) -> MahalanobisDetector:
        """Estimate μ and Σ⁻¹ from the bank ``X`` (N, D); ``y`` and ``neighbors`` are ignored."""
        from sklearn.covariance import LedoitWolf

        bank = check_features(X, "bank")
        check_not_constant(bank, "bank")
        gaussian = LedoitWolf(store_precision=True).fit(bank.astype(np.float64))
        self.bank_ = bank
        self.location_ = gaussian.location_
        self.precision_ = gaussian.precision_
        self.shrinkage_ = float(gaussian.shrinkage_)
        self.n_features_in_ = bank.shape[1]
        return self

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        scores = np.empty(len(X), dtype=np.float64)
        for rows in chunk_slices(len(X), X.shape[1]):
            centred = X[rows].astype(np.float64) - self.location_  # (chunk, D)
            scores[rows] = np.einsum("ij,ij->i", centred @ self.precision_, centred)
        return scores
