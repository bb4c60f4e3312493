"""The run cache: a run already made is never made again, whatever job asks for it.

A job of the workflow makes the runs of one class (and bank) in one process; when the
config gains a variant, that job runs again. Each run it made is kept here under a
*content key*: the hash of everything its result depends on — method, settings and
seed; the bank, the test features and labels, and the neighbour indices it reads (as
bytes); and the source of the code that fits and scores it (the detector's modules and
the ``cap`` modules they import). A run whose key is here is read back, not fitted:
adding a variant fits only that variant's runs, a killed job resumes after its last
finished run, and editing a detector's code, or its inputs, makes new keys. The code
hashed is what turns the fingerprinted inputs into scores: the detector's modules and
the ``cap.detectors`` and ``cap.utils`` modules they import (each name resolved to the
module that defines it; a plugin's detector, its modules and those of its own package
they import), the metrics (image and pixel), and the module that fits and scores runs
(:data:`RUN_MODULES`); how the inputs were read is covered by their fingerprints.

An entry is ``<key>.npy`` (the test scores), ``<key>.maps.npy`` (a localizing run's
anomaly maps) and ``<key>.json`` (the run's record, with the arrays' sha256, sealed with
its own), written in that order, atomically: the JSON marks the entry complete. The
cache proves what it returns: an entry is used only when its files read, its record's
seal holds (its measured seconds are the run's), the arrays match their digests and
the test split's size, every metric of the record (image metrics, and pixel metrics
against the test masks where the run localizes) equals the one recomputed from them,
and its method, seed and settings are the run's; any other entry is a miss, with a
warning naming its file, and the run is fitted again (and the entry replaced). Delete
the folder to make every run again.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from cap.detectors.base import BaseDetector
from cap.metrics.image import score_metrics
from cap.metrics.localization import pixel_metrics
from cap.utils.io import atomic_path, seal, unseal, write_json_atomic

log = logging.getLogger(__name__)

#: The module that fits and scores every run (hashed as it is, its imports are not).
RUN_MODULES: tuple[str, ...] = ("cap.evaluation.runs",)
#: The metrics every run's record holds (image, and pixel where it localizes).
METRIC_MODULES: tuple[str, ...] = ("cap.metrics.image", "cap.metrics.localization")
#: The fields an entry's record adds to the run's own: its arrays' digests.
ENTRY_DIGESTS: tuple[str, ...] = ("scores_sha256", "maps_sha256")
#: Packages whose imports the code digest follows: the layers a detector builds on.
DIGEST_PACKAGES: tuple[str, ...] = ("cap.detectors", "cap.metrics", "cap.utils")


@dataclass(frozen=True)
class CachedRun:
    """A run read back from the cache."""

    record: dict[str, Any]  # as the job that made it recorded it
    scores: np.ndarray  # (M,) test scores
    maps: np.ndarray | None = None  # (M, h, w) anomaly maps of a localizing run


class RunCache:
    """A folder of finished runs, by content key."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def get(
        self,
        key: str,
        *,
        is_anomaly: np.ndarray,
        expect: Mapping[str, Any],
        monitored: bool = False,
        masks: np.ndarray | None = None,
    ) -> CachedRun | None:
        """The run of ``key``, if cached and consistent (with per-epoch test scores when
        ``monitored``); None otherwise.

        ``is_anomaly`` (M,) are the test split's labels, from which the record's metrics
        are recomputed; ``expect`` holds record fields the run must have (its method,
        seed and settings); ``masks`` (M, H, W), for a localizing run, are the test
        masks its maps' pixel metrics are recomputed against.
        """
        record_path, scores_path, maps_path = self._paths(key)
        if not record_path.is_file():
            return None
        try:
            payload = json.loads(record_path.read_text())
            scores = np.load(scores_path, allow_pickle=False)
            maps = None if masks is None else np.load(maps_path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            return _reject(record_path, f"it cannot be read ({error})")
        if not isinstance(payload, dict):
            return _reject(record_path, "its record is not a JSON object")
        record, tampered = unseal(payload)
        problem = (
            (None if tampered is None else f"its record {tampered}")
            or _inconsistency(record, scores, is_anomaly, expect)
            or (None if masks is None else _maps_inconsistency(record, maps, masks))
        )
        if problem is not None:
            return _reject(record_path, problem)
        if monitored and not record.get("monitored", False):
            return None
        own = {key: value for key, value in record.items() if key not in ENTRY_DIGESTS}
        return CachedRun(record=own, scores=scores, maps=maps)

    def put(
        self,
        key: str,
        record: dict[str, Any],
        scores: np.ndarray,
        maps: np.ndarray | None = None,
    ) -> None:
        """Keep a finished run (its arrays first: the record, with their digests, sealed,
        marks it complete; its measured seconds cannot be edited unseen)."""
        record_path, scores_path, maps_path = self._paths(key)
        digests = {"scores_sha256": _save(scores_path, np.asarray(scores))}
        if maps is not None:
            digests["maps_sha256"] = _save(maps_path, np.asarray(maps))
        write_json_atomic(record_path, seal({**record, **digests}))

    def _paths(self, key: str) -> tuple[Path, Path, Path]:
        folder = self.folder / key[:2]
        return folder / f"{key}.json", folder / f"{key}.npy", folder / f"{key}.maps.npy"


def open_cache(folder: str | os.PathLike[str] | None) -> RunCache | None:
    """The run cache of a job's spec (None: no cache)."""
    return None if folder is None else RunCache(folder)


def _save(path: Path, array: np.ndarray) -> str:
    """Write ``array`` atomically; its :func:`fingerprint`."""
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.save(handle, array)
    return fingerprint(array)


def _inconsistency(
    record: Any, scores: np.ndarray, is_anomaly: np.ndarray, expect: Mapping[str, Any]
) -> str | None:
    """What makes a cache entry unusable, or None when it proves what it holds."""
    if not isinstance(record, dict) or "scores_sha256" not in record:
        return "its record is not a run record with a scores digest"
    if scores.shape != (len(is_anomaly),):
        return f"it holds {scores.shape} scores for {len(is_anomaly)} test items"
    if fingerprint(scores) != record["scores_sha256"]:
        return "its scores do not match their sha256"
    changed = [name for name, value in expect.items() if record.get(name) != value]
    if changed:
        return f"its {', '.join(changed)} differ from the run's"
    try:
        metrics = score_metrics(is_anomaly, scores)
    except ValueError as error:
        return f"its scores give no metrics ({error})"
    return _differing(record, metrics, "scores")


def _maps_inconsistency(record: dict[str, Any], maps: np.ndarray, masks: np.ndarray) -> str | None:
    """What makes a localizing run's cached maps unusable, or None."""
    if maps.ndim != 3 or len(maps) != len(masks):
        return f"it holds maps of shape {maps.shape} for {len(masks)} test images"
    if fingerprint(maps) != record.get("maps_sha256"):
        return "its maps do not match their sha256"
    return _differing(record, pixel_metrics(masks, maps), "maps")


def _differing(record: dict[str, Any], metrics: dict[str, float], source: str) -> str | None:
    wrong = [name for name, value in metrics.items() if record.get(name) != value]
    if wrong:
        return f"its {', '.join(wrong)} differ from the {source}' ({metrics})"
    return None


def _reject(path: Path, problem: str) -> None:
    log.warning("run cache entry %s is not used, as %s: the run is made again", path, problem)


def run_key(
    method: str, settings: dict[str, Any], seed: int, inputs: Iterable[str], code: str
) -> str:
    """The content key of a run: its method, settings and seed, the fingerprints of the
    data it reads, and the digest of the code that makes it."""
    payload = {
        "method": method,
        "settings": settings,
        "seed": seed,
        "inputs": list(inputs),
        "code": code,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of arrays' shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@cache
def code_digest(detector: type[BaseDetector]) -> str:
    """sha256 of the source of the code that scores with ``detector`` (module docstring);
    once per process and detector, as every run of a batch asks for it. A plugin's
    detector (or the estimator it adapts) is a class of its own package: its module is
    hashed too, with the modules of that package it imports, so that editing a plugin
    makes its runs again."""
    roots = {cls.__module__ for cls in detector.__mro__ if issubclass(cls, BaseDetector)}
    plugins = {f"{root.partition('.')[0]}." for root in roots if not root.startswith("cap.")}
    packages = (*DIGEST_PACKAGES, *sorted(plugins))
    return _digest(_import_closure(roots | set(METRIC_MODULES), packages) | set(RUN_MODULES))


def _digest(modules: set[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode())
        digest.update(Path(_origin(name)).read_bytes())
    return digest.hexdigest()


def _import_closure(roots: Iterable[str], packages: tuple[str, ...] = DIGEST_PACKAGES) -> set[str]:
    """``roots`` and the modules of ``packages`` they import, transitively (lazy imports
    inside functions included)."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(m for m in _imports(name, packages) if m.startswith(packages))
    return seen


def _imports(name: str, packages: tuple[str, ...]) -> set[str]:
    """The modules of ``packages`` that module ``name`` imports (relative imports
    resolved), each imported name resolved to the module that defines it (``from
    cap.detectors import KNNDetector`` is ``cap.detectors.base``, not the package's
    ``__init__``)."""
    origin = _origin(name)
    package = name if origin.endswith("__init__.py") else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(origin).read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(packages))
        elif isinstance(node, ast.ImportFrom):
            module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            if module.startswith(packages):
                found.update(_defining_module(module, alias.name, packages) for alias in node.names)
    return found


def _defining_module(package: str, name: str, packages: tuple[str, ...]) -> str:
    submodule = f"{package}.{name}"
    if _is_module(submodule):
        return submodule
    defined = getattr(getattr(importlib.import_module(package), name, None), "__module__", None)
    return defined if isinstance(defined, str) and defined.startswith(packages) else package


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _origin(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(name)
    return spec.origin
