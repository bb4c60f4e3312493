"""One run of the benchmark: a detector built from a variant's settings, fitted on one
normal class with the precomputed neighbours, then scored on the test split.

The workflow's ``train`` and ``score`` rules call these through the ``cap`` CLI.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cap.benchmark.neighbors import Neighbors
from cap.benchmark.protocol import OneClassSplit
from cap.detectors import KNNDetector, make_detector
from cap.utils.errors import ConfigError


def build_detector(method: str, settings: Mapping[str, object], seed: int) -> KNNDetector:
    """Instantiate ``method`` with ``settings`` (checked by :func:`make_detector`); ``seed``
    only where the method takes one."""
    detector = make_detector(method, **settings)
    if not isinstance(detector, KNNDetector):
        raise ConfigError(
            f"method {method!r} is not a kNN detector: the benchmark's runs share "
            "precomputed neighbours"
        )
    if "seed" in detector.get_params():
        detector.set_params(seed=seed)
    return detector


def fit_on_split(
    detector: KNNDetector, split: OneClassSplit, neighbors: Neighbors, *, monitor: bool = False
) -> KNNDetector:
    """Fit on the split's bank; with ``monitor`` (trainable detectors), record test scores
    after every epoch."""
    train_indices = neighbors.train_indices[:, : detector.k]
    if monitor:
        test_indices = neighbors.test_indices[:, : detector.k]
        return detector.fit(
            split.bank,
            neighbors=train_indices,
            monitor=(split.test, split.is_anomaly, test_indices),
        )
    return detector.fit(split.bank, neighbors=train_indices)


def score_split(detector: KNNDetector, split: OneClassSplit, neighbors: Neighbors) -> np.ndarray:
    """Anomaly scores (M,) of the split's test items, higher = more anomalous."""
    return detector.anomaly_score(split.test, neighbors=neighbors.test_indices[:, : detector.k])
