"""Runs of the benchmark: a variant's detector, fitted on one normal class with the
precomputed neighbours (or loaded from its kept model), scored on the test split.

The workflow's ``evaluate`` rule makes a batch of runs of one class in one process
(``cap evaluate``); its ``train`` rule fits the runs whose model a figure draws
(``cap train``). Both describe each run by a :class:`RunSpec`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cap.benchmark.neighbors import Neighbors
from cap.benchmark.protocol import OneClassSplit
from cap.detectors import KNNDetector, TrainableDetector, detector_class, make_detector
from cap.utils.errors import ConfigError
from cap.utils.metrics import auroc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """One run of a batch, as the plan describes it (``cap.benchmark.plan.Plan.run_spec``)."""

    variant: str  # the canonical variant's name
    method: str  # registered detector
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)  # detector settings
    monitor: bool = False  # record test scores after every epoch (score curves)
    model: str | None = None  # the kept model to load instead of fitting

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Parse ``cap evaluate --run``'s JSON object, naming what is wrong."""
        try:
            spec = cls(**json.loads(text))
        except (json.JSONDecodeError, TypeError) as error:
            raise ConfigError(f"--run expects a JSON run spec ({error}): {text}") from error
        if not isinstance(spec.settings, dict):
            raise ConfigError(f"--run settings must be an object: {text}")
        return spec


def build_detector(spec: RunSpec, k_available: int, *, clip_k: bool = False) -> KNNDetector:
    """The run's detector (settings checked by :func:`make_detector`), seeded where it
    takes a seed; with ``clip_k``, K is lowered to the ``k_available`` neighbours."""
    settings = dict(spec.settings)
    if clip_k and settings.get("k", 0) > k_available:
        log.warning(
            "K=%s exceeds the %d neighbours available: using K=%d",
            settings["k"],
            k_available,
            k_available,
        )
        settings["k"] = k_available
    detector = make_detector(spec.method, **settings)
    if not isinstance(detector, KNNDetector):
        raise ConfigError(
            f"method {spec.method!r} is not a kNN detector: the benchmark's runs share "
            "precomputed neighbours"
        )
    if "seed" in detector.get_params():
        detector.set_params(seed=spec.seed)
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


def bank_provenance(
    split: OneClassSplit, embeddings: str, normal_class: int | None
) -> dict[str, Any]:
    """Where a bank came from, stored with a kept model and checked when it is loaded."""
    return {
        "embeddings": str(embeddings),
        "normal_class": normal_class,
        "rows": len(split.bank),
        "bank_sha256": hashlib.sha256(np.ascontiguousarray(split.bank).tobytes()).hexdigest(),
    }


def train_run(
    spec: RunSpec,
    split: OneClassSplit,
    neighbors: Neighbors,
    provenance: Mapping[str, Any],
    out_model: str,
    *,
    clip_k: bool = False,
) -> TrainableDetector:
    """Fit a trainable run and save its model (without the bank) with its provenance."""
    detector = build_detector(spec, neighbors.k_max, clip_k=clip_k)
    if not isinstance(detector, TrainableDetector):
        raise ConfigError(f"method {spec.method!r} learns nothing: it has no model to keep")
    fit_on_split(detector, split, neighbors, monitor=spec.monitor)
    detector.save(out_model, include_bank=False, provenance=dict(provenance))
    return detector


def evaluate_run(
    spec: RunSpec,
    split: OneClassSplit,
    neighbors: Neighbors,
    provenance: Mapping[str, Any],
    *,
    clip_k: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Fit (or load) and score one run: its record and its test scores (M,).

    The record holds the variant, method, seed, the settings used, the AUROC, the
    fit and score seconds (fit: ``None`` for a loaded model) and, for trainable
    methods, the training history.
    """
    if spec.model is not None:
        detector = detector_class(spec.method).load(
            spec.model, bank=split.bank, provenance=dict(provenance)
        )
        fit_seconds = None
    else:
        detector = build_detector(spec, neighbors.k_max, clip_k=clip_k)
        start = time.perf_counter()
        fit_on_split(detector, split, neighbors, monitor=spec.monitor)
        fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = score_split(detector, split, neighbors)
    score_seconds = time.perf_counter() - start
    record = {
        "variant": spec.variant,
        "method": spec.method,
        "seed": spec.seed,
        "settings": detector.get_params(),
        "chaotic": detector.chaotic,
        "auroc": auroc(split.is_anomaly, scores),
        "fit_s": fit_seconds,
        "score_s": score_seconds,
        "history": getattr(detector, "history_", None),
    }
    log.info(
        "%s seed %d: AUROC %.4f (fit %s s, score %.2f s)",
        spec.variant,
        spec.seed,
        record["auroc"],
        "loaded" if fit_seconds is None else f"{fit_seconds:.2f}",
        score_seconds,
    )
    return record, scores
