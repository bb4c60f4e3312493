"""Making runs: a method's detector fitted on one normal class with the precomputed
neighbours — or read back from the run cache, or loaded from its kept model — and
scored on the whole test split.

The workflow's ``evaluate`` job makes every run of one class and bank in one process
(``cap evaluate``); its ``train`` job fits a run whose model a figure draws (``cap
train``). Both describe each run by a :class:`cap.evaluation.jobs.RunSpec`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from cap.detectors import (
    BaseDetector,
    KNNDetector,
    TrainableDetector,
    detector_class,
    make_detector,
)
from cap.evaluation.cache import RunCache, code_digest, fingerprint, run_key
from cap.evaluation.jobs import RunSpec, TaskSpec
from cap.evaluation.neighbors import Neighbors, load_neighbors
from cap.evaluation.protocol import OneClassTask, load_task
from cap.metrics.image import score_metrics
from cap.metrics.localization import map_maxima, pixel_metrics
from cap.utils.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInputs:
    """What every run of a job reads: the task, its neighbours, and their fingerprints."""

    task: OneClassTask  # the normal bank and the test split
    neighbors: Neighbors  # k_max neighbours of every bank and test item
    provenance: dict[str, Any]  # where the bank came from (kept with models)
    test_fingerprint: str  # sha256 of the test features and anomaly labels
    clip_k: bool = False  # lower K to the neighbours available

    @cached_property
    def patches_fingerprint(self) -> str:
        """sha256 of the bank's and the test split's patch layers (patch-level methods)."""
        return fingerprint(*self.task.bank_patches, *self.task.test_patches)

    @cached_property
    def localization_fingerprint(self) -> str:
        """sha256 of the test masks and the feature maps anomaly maps are drawn on."""
        maps = () if self.task.test_maps is None else (self.task.test_maps,)
        return fingerprint(self.task.test_masks, *maps)

    def localizes(self, detector: BaseDetector) -> bool:
        """Whether ``detector``'s runs get anomaly maps and pixel metrics here: the test
        split has defect masks and the detector scores positions."""
        return self.task.test_masks is not None and detector.localizes


class MadeRun(NamedTuple):
    """A run's record, its test scores (M,) and, where it localizes, its anomaly maps
    (M, h, w) on the detector's grid."""

    record: dict[str, Any]
    scores: np.ndarray
    maps: np.ndarray | None = None


def load_run_inputs(
    spec: TaskSpec,
    neighbors: str | os.PathLike[str],
    *,
    clip_k: bool = False,
    feature_maps: bool | None = None,
    patch_maps: bool = False,
) -> tuple[RunInputs, Any]:
    """A job's inputs, and the test embeddings (with their attributes and feature maps as
    :func:`cap.evaluation.protocol.load_task` reads them; ``patch_maps``: both splits'
    patch layers, for patch-level methods)."""
    task, test = load_task(spec, feature_maps=feature_maps, patch_maps=patch_maps)
    inputs = RunInputs(
        task=task,
        neighbors=load_neighbors(neighbors),
        provenance=bank_provenance(task, spec.train_embeddings, spec.normal_class),
        test_fingerprint=fingerprint(task.test, task.is_anomaly),
        clip_k=clip_k,
    )
    return inputs, test


def warm_up(specs: Sequence[RunSpec]) -> None:
    """Where a method trains, import torch, and the compiler stack that its optimisers
    import at their first step (about a second), before the first fit: the start-up
    then includes them, and each run's fit seconds are its own."""
    if any(detector_class(spec.method).trainable for spec in specs):
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)]).step()


def bank_provenance(
    task: OneClassTask, embeddings: str, normal_class: int | None
) -> dict[str, Any]:
    """Where a bank came from, stored with a kept model and checked when it is loaded."""
    return {
        "embeddings": str(embeddings),
        "normal_class": normal_class,
        "rows": len(task.bank),
        "bank_sha256": hashlib.sha256(np.ascontiguousarray(task.bank).tobytes()).hexdigest(),
    }


def build_detector(spec: RunSpec, k_available: int, *, clip_k: bool = False) -> BaseDetector:
    """The run's detector (settings checked by :func:`make_detector`), seeded where it
    takes a seed; with ``clip_k``, a kNN detector's K is lowered to the ``k_available``
    neighbours."""
    settings = dict(spec.settings)
    uses_k = issubclass(detector_class(spec.method), KNNDetector)
    if uses_k and clip_k and settings.get("k", 0) > k_available:
        log.warning(
            "K=%s exceeds the %d neighbours available: using K=%d",
            settings["k"],
            k_available,
            k_available,
        )
        settings["k"] = k_available
    detector = make_detector(spec.method, **settings)
    if "seed" in detector.get_params():
        detector.set_params(seed=spec.seed)
    return detector


def fit_on_task(
    detector: BaseDetector, task: OneClassTask, neighbors: Neighbors, *, monitor: bool = False
) -> BaseDetector:
    """Fit on the task's bank: a kNN detector with its precomputed neighbours; with
    ``monitor`` (trainable detectors), test scores are recorded after every epoch."""
    if detector.reads_patches:
        return detector.fit(list(task.bank_patches))
    if not isinstance(detector, KNNDetector):
        return detector.fit(task.bank)
    train_indices = neighbors.train_indices[:, : detector.k]
    if monitor:
        test_indices = neighbors.test_indices[:, : detector.k]
        return detector.fit(
            task.bank,
            neighbors=train_indices,
            monitor=(task.test, task.is_anomaly, test_indices),
        )
    return detector.fit(task.bank, neighbors=train_indices)


def score_task(detector: BaseDetector, task: OneClassTask, neighbors: Neighbors) -> np.ndarray:
    """Anomaly scores (M,) of the task's test items, higher = more anomalous."""
    if detector.reads_patches:
        return detector.anomaly_score(list(task.test_patches))
    if not isinstance(detector, KNNDetector):
        return detector.anomaly_score(task.test)
    return detector.anomaly_score(task.test, neighbors=neighbors.test_indices[:, : detector.k])


def localize(detector: BaseDetector, task: OneClassTask, neighbors: Neighbors) -> np.ndarray:
    """Anomaly maps (M, h, w) of the test items on the detector's grid: a patch-level
    detector's patch scores, or the paper's maps over the last feature maps (§4.6)."""
    if detector.reads_patches:
        return detector.anomaly_maps(list(task.test_patches))
    if task.test_maps is None:
        raise DataError(
            "anomaly maps need every test image's feature maps, and the test embeddings "
            "keep only some: embed the test split again (the workflow keeps them all for "
            "datasets with defect masks)"
        )
    k = detector.k if isinstance(detector, KNNDetector) else None  # as score_task reads them
    test_indices = None if k is None else neighbors.test_indices[:, :k]
    return detector.anomaly_maps(task.test, feature_maps=task.test_maps, neighbors=test_indices)


def cache_key(detector: BaseDetector, spec: RunSpec, inputs: RunInputs) -> str:
    """The run's content key (:mod:`cap.evaluation.cache`): the neighbours count only for
    the detectors that read them, as many columns as they read; patch layers, masks and
    feature maps only for the runs that read them."""
    data = [inputs.provenance["bank_sha256"], inputs.test_fingerprint]
    if isinstance(detector, KNNDetector):
        k = detector.k
        data.append(
            fingerprint(inputs.neighbors.train_indices[:, :k], inputs.neighbors.test_indices[:, :k])
        )
    if detector.reads_patches:
        data.append(inputs.patches_fingerprint)
    if inputs.localizes(detector):
        data.append(inputs.localization_fingerprint)
    params = detector.get_params()
    return run_key(spec.method, params, spec.seed, data, code_digest(type(detector)))


def make_run(
    spec: RunSpec,
    inputs: RunInputs,
    *,
    cache: RunCache | None = None,
) -> MadeRun:
    """One run: its record, its test scores (M,) and, where it localizes, its anomaly maps.

    Read from ``cache`` when there (with per-epoch scores if ``spec.monitor``), else
    loaded from the spec's kept ``model`` when given, else fitted; then scored and kept in the
    cache. The record holds the run's setting key, method, seed, the settings used, its
    image metrics (and pixel metrics where it localizes), the fit and score seconds (of
    the run that made it; fit ``None`` for a loaded model), the training history of
    trainable methods, and where it came from (``source``: fit, cache or model).
    """
    detector = build_detector(spec, inputs.neighbors.k_max, clip_k=inputs.clip_k)
    key = cache_key(detector, spec, inputs)
    if cache is not None:
        expect = {
            "method": spec.method,
            "seed": spec.seed,
            "settings": json.loads(json.dumps(detector.get_params())),  # as its JSON holds them
        }
        masks = inputs.task.test_masks if inputs.localizes(detector) else None
        cached = cache.get(
            key,
            is_anomaly=inputs.task.is_anomaly,
            expect=expect,
            monitored=spec.monitor,
            masks=masks,
        )
        if cached is not None:  # what the method says of itself is its class's, not the file's
            record = {
                **cached.record,
                "setting": spec.setting,
                "source": "cache",
                "chaotic": detector.chaotic,
            }
            _log(record, "from the cache")
            return MadeRun(record, cached.scores, cached.maps)
    if spec.model is not None:
        detector = detector_class(spec.method).load(
            spec.model, bank=inputs.task.bank, provenance=dict(inputs.provenance)
        )
        made = _score(detector, spec, inputs, fit_seconds=None, source="model")
    else:
        fit_seconds = _fit(detector, spec, inputs)
        made = _score(detector, spec, inputs, fit_seconds=fit_seconds, source="fit")
    if cache is not None:
        cache.put(key, made.record, made.scores, made.maps)
    fit_s = made.record["fit_s"]
    _log(made.record, "loaded" if fit_s is None else f"fit {fit_s:.2f} s")
    return made


def train_run(
    spec: RunSpec, inputs: RunInputs, out_model: str, *, cache: RunCache | None = None
) -> TrainableDetector:
    """Fit a trainable run and save its model (without the bank) with its provenance;
    with a ``cache``, it is also scored and kept there, where the class's ``evaluate``
    job finds it."""
    detector = build_detector(spec, inputs.neighbors.k_max, clip_k=inputs.clip_k)
    if not isinstance(detector, TrainableDetector):
        raise ConfigError(f"method {spec.method!r} learns nothing: it has no model to keep")
    fit_seconds = _fit(detector, spec, inputs)
    detector.save(out_model, include_bank=False, provenance=dict(inputs.provenance))
    if cache is not None:
        made = _score(detector, spec, inputs, fit_seconds=fit_seconds, source="fit")
        cache.put(cache_key(detector, spec, inputs), *made)
    return detector


def _fit(detector: BaseDetector, spec: RunSpec, inputs: RunInputs) -> float:
    """Fit; returns the seconds it took."""
    start = time.perf_counter()
    fit_on_task(detector, inputs.task, inputs.neighbors, monitor=spec.monitor)
    return time.perf_counter() - start


def _score(
    detector: BaseDetector,
    spec: RunSpec,
    inputs: RunInputs,
    *,
    fit_seconds: float | None,
    source: str,
) -> MadeRun:
    """Score the test split (and draw its anomaly maps where the run localizes)."""
    start = time.perf_counter()
    maps, pixel = None, {}
    if inputs.localizes(detector):
        maps = localize(detector, inputs.task, inputs.neighbors)
        pixel = pixel_metrics(inputs.task.test_masks, maps)
    if maps is not None and detector.scores_are_map_maxima:
        scores = map_maxima(maps)  # the search is not made twice
    else:
        scores = score_task(detector, inputs.task, inputs.neighbors)
    record = {
        "setting": spec.setting,
        "method": spec.method,
        "seed": spec.seed,
        "settings": detector.get_params(),
        "chaotic": detector.chaotic,
        **score_metrics(inputs.task.is_anomaly, scores),
        **pixel,
        "fit_s": fit_seconds,
        "score_s": time.perf_counter() - start,
        "history": getattr(detector, "history_", None),
        "monitored": spec.monitor,
        "source": source,
    }
    return MadeRun(record, scores, maps)


def _log(record: dict[str, Any], how: str) -> None:
    log.info(
        "%s seed %d: AUROC %.4f (%s, score %.2f s)",
        record["setting"],
        record["seed"],
        record["auroc"],
        how,
        record["score_s"],
    )
