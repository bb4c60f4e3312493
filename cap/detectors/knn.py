"""Baselines without adaptation (Table 1): CAP's criterion in the pretrained space, and DN2.

Shapes: N = bank items, n = queries, D = feature dimension, K = neighbours.
"""

from __future__ import annotations

import numpy as np

from cap.detectors.base import KNNDetector
from cap.detectors.search import chunk_slices, l2_knn_search, l2_normalize


class _MemoryBankDetector(KNNDetector):
    """A detector whose fitting is storing the bank: scoring is a lookup in it."""

    def fit(self, bank: np.ndarray, *, neighbors: np.ndarray | None = None) -> _MemoryBankDetector:
        """Store the bank (N, D); training ``neighbors`` are not needed and are ignored."""
        self.bank_ = self._check_bank(bank, exclude_self=False)
        self.n_features_in_ = self.bank_.shape[1]
        return self


class NoAdaptationDetector(_MemoryBankDetector, name="no_adaptation"):
    """CAP (no adaptation): s = 1 − cos(z, mean of its k nearest normal features).

    Eq. (8) with the identity as projection head and plain averaging: the
    neighbours are found by cosine similarity (§3.1) and averaged un-normalised.

    Parameters
    ----------
    k : int
        Number of nearest normal features averaged.
    """

    def __init__(self, *, k: int = 32) -> None:
        self.k = k

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

    Parameters
    ----------
    k : int
        Number of nearest normal features.
    """

    def __init__(self, *, k: int = 2) -> None:
        self.k = k

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        squared_distances, _ = l2_knn_search(self.bank_, X, k=self.k)  # (n, K)
        return squared_distances.sum(axis=1)
