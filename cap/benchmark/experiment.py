"""One run of the benchmark: a detector built from a variant's settings, fitted on one
normal class with the precomputed neighbours, then scored on the test split.

The workflow's ``train`` and ``score`` rules call these through the ``cap`` CLI.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cap.detectors import BaseDetector, make_detector
from cap.benchmark.protocol import Neighbors, OneClassSplit


def build_detector(method: str, settings: Mapping[str, object], seed: int) -> BaseDetector:
    """Instantiate ``method`` with ``settings`` (checked by :func:`make_detector`); ``seed``
    only where the method takes one."""
    detector = make_detector(method, **settings)
    if "seed" in detector.get_params():
        detector.set_params(seed=seed)
    return detector


def fit_on_split(
    detector: BaseDetector, split: OneClassSplit, neighbors: Neighbors, *, monitor: bool = False
) -> BaseDetector:
    """Fit on the split's bank; with ``monitor``, record test scores after every epoch."""
    k = detector.get_params().get("k")
    train_indices = neighbors.train_indices[:, :k] if k else None
    if monitor:
        test_indices = neighbors.test_indices[:, :k] if k else None
        return detector.fit(
            split.bank,
            neighbors=train_indices,
            monitor=(split.test, split.is_anomaly, test_indices),
        )
    return detector.fit(split.bank, neighbors=train_indices)


def score_split(detector: BaseDetector, split: OneClassSplit, neighbors: Neighbors) -> np.ndarray:
    """Anomaly scores (M,) of the split's test items, higher = more anomalous."""
    k = detector.get_params().get("k")
    test_indices = neighbors.test_indices[:, :k] if k else None
    return detector.anomaly_score(split.test, neighbors=test_indices)
