"""The files of a batch of runs (records and scores) and the long-form table of all runs.

A batch's *records* file (``layout.RECORDS``) is sealed JSON (it holds its own sha256):
``{"job": {...}, "runs": [...]}``:
the job's start-up seconds and which runs it fitted, and one object per run with its
identity (dataset, backbone, cls, class_name, preprocessing), task (n_train, n_test,
n_anomalous), backbone (backbone_model, weights) and the record of
:func:`cap.evaluation.runs.make_run` (setting key, method, seed, settings, AUROC, ...)
and the digests of its scores and maps, which every reader of those files checks.
Its *scores* file (``layout.SCORES``) is a gzipped CSV, one row per (run, test image).
On a dataset with defect masks, its *maps* file (``layout.MAPS``, NumPy ``.npz``) holds
each localizing run's anomaly maps (M, h, w) on the detector's grid, under
:func:`map_name`, and the test ``ids`` in their row order.

Runs are named by their settings' content keys; the runs table gives each the label
of its variant (the workflow's planning names them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cap.evaluation.cache import fingerprint
from cap.metrics.image import METRICS, score_metrics
from cap.metrics.localization import PIXEL_METRICS, pixel_metrics
from cap.utils.errors import DataError
from cap.utils.io import atomic_path, seal, unseal, write_json_atomic

#: Columns of a batch's score file.
SCORE_COLUMNS: tuple[str, ...] = ("setting", "seed", "id", "label", "is_anomaly", "score")
#: The first columns of the long-form runs table; every setting follows as a column of
#: its own, then :data:`MEASURE_COLUMNS`.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "dataset", "cls", "class_name", "variant", "setting", "method", "seed", "backbone",
    "preprocessing", "backbone_model", "weights", "n_train", "n_test", "n_anomalous", "chaotic",
)  # fmt: skip
MEASURE_COLUMNS: tuple[str, ...] = (*METRICS, *PIXEL_METRICS, "fit_s", "score_s")
#: A run record's digests of its scores and maps (:func:`cap.evaluation.cache.fingerprint`).
SCORES_DIGEST = "scores_sha256"
MAPS_DIGEST = "maps_sha256"
#: Order of the runs in every table.
SORT_COLUMNS: tuple[str, ...] = ("dataset", "backbone", "cls", "variant", "seed")


def map_name(setting: str, seed: int) -> str:
    """A run's entry in a maps file."""
    return f"{setting}.seed{seed}"


def write_batch(
    records_path: str | os.PathLike[str],
    scores_path: str | os.PathLike[str],
    *,
    job: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    scores: Sequence[np.ndarray],
    test: pd.DataFrame,
    maps_path: str | os.PathLike[str] | None = None,
    maps: Sequence[np.ndarray | None] = (),
) -> None:
    """Write a batch's scores (and, with ``maps_path``, its localizing runs' maps), then
    its records, each atomically: the records mark the batch complete, and they are
    sealed (:func:`cap.utils.io.seal`) and hold each run's digest of its scores (and
    maps), which every reader checks (:func:`run_scores`, :func:`run_maps`).

    ``test`` holds the test split's ``id``, ``label`` and ``is_anomaly``, one row per
    item, in the order of each run's ``scores`` (M,), written as float64 (which the
    CSV gives back to the bit).
    """
    values = [np.asarray(run_values, dtype=np.float64) for run_values in scores]
    frames = [
        test.assign(setting=run["setting"], seed=run["seed"], score=run_values)
        for run, run_values in zip(runs, values, strict=True)
    ]
    with atomic_path(scores_path) as temporary:
        pd.concat(frames).loc[:, list(SCORE_COLUMNS)].to_csv(
            temporary, index=False, compression="gzip"
        )
    sealed = [
        {**run, SCORES_DIGEST: fingerprint(run_values)}
        for run, run_values in zip(runs, values, strict=True)
    ]
    if maps_path is not None:
        digests = write_maps(maps_path, runs=runs, maps=maps, ids=list(test["id"]))
        sealed = [
            {**run, MAPS_DIGEST: digests[name]} if name in digests else run
            for run in sealed
            for name in [map_name(run["setting"], run["seed"])]
        ]
    write_json_atomic(records_path, seal({"job": dict(job), "runs": sealed}))


def write_maps(
    path: str | os.PathLike[str],
    *,
    runs: Sequence[Mapping[str, Any]],
    maps: Sequence[np.ndarray | None],
    ids: Sequence[str],
) -> dict[str, str]:
    """Write the anomaly maps of a batch's localizing runs (those with maps), atomically;
    each one's digest by :func:`map_name`."""
    arrays = {
        map_name(run["setting"], run["seed"]): np.asarray(values)
        for run, values in zip(runs, maps, strict=True)
        if values is not None
    }
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez_compressed(handle, ids=np.asarray(ids, dtype=str), **arrays)
    return {name: fingerprint(values) for name, values in arrays.items()}


def read_maps(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A maps file: ``ids`` (M,) and each run's maps (M, h, w) by :func:`map_name`; check
    a run's against its record with :func:`run_maps`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a maps file: {error}") from error


def read_scores(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A batch's score file, ids as text; check a run's against its record with
    :func:`run_scores`."""
    try:
        return pd.read_csv(path, compression="gzip", dtype={"id": str, "setting": str})
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as error:
        raise DataError(f"{path} is not a scores file: {error}") from error


def run_scores(
    scores: pd.DataFrame, run: Mapping[str, Any], is_anomaly: np.ndarray, source: object
) -> np.ndarray:
    """One run's test scores (M,) from its batch's scores file (:func:`read_scores`, read
    from ``source``), checked against its record as the run cache checks its entries:
    one per test item, their digest, and every image metric recomputed against the test
    split's labels ``is_anomaly`` (M,). A mismatch raises :class:`DataError` naming the
    file and the run."""
    rows = scores[(scores["setting"] == run["setting"]) & (scores["seed"] == run["seed"])]
    values = rows["score"].to_numpy(dtype=np.float64)
    where = f"{source}: the scores of run {run['setting']} seed {run['seed']}"
    if len(values) != len(is_anomaly):
        raise DataError(f"{where} are {len(values)}, for {len(is_anomaly)} test items")
    if fingerprint(values) != run.get(SCORES_DIGEST):
        raise DataError(f"{where} do not match the digest its record holds: the file was changed")
    _check_metrics(run, _measured(score_metrics, is_anomaly, values, where), where)
    return values


def run_maps(
    maps: Mapping[str, np.ndarray], run: Mapping[str, Any], masks: np.ndarray, source: object
) -> np.ndarray:
    """One localizing run's anomaly maps (M, h, w) from its batch's maps file
    (:func:`read_maps`, read from ``source``), checked against its record: their digest,
    and every pixel metric recomputed against the test masks (M, H, W)."""
    name = map_name(run["setting"], run["seed"])
    where = f"{source}: the maps of run {run['setting']} seed {run['seed']}"
    if name not in maps:
        raise DataError(f"{where} are missing")
    values = maps[name]
    if fingerprint(values) != run.get(MAPS_DIGEST):
        raise DataError(f"{where} do not match the digest its record holds: the file was changed")
    _check_metrics(run, _measured(pixel_metrics, masks, values, where), where)
    return values


def checked_maps(
    maps: Mapping[str, np.ndarray],
    runs: Iterable[Mapping[str, Any]],
    masks: np.ndarray,
    source: object,
) -> dict[str, np.ndarray]:
    """A maps file's arrays (:func:`read_maps`, read from ``source``) with every one of
    ``runs`` that has maps there checked against its record (:func:`run_maps`)."""
    checked = {"ids": maps["ids"]} if "ids" in maps else {}
    for run in runs:
        name = map_name(run["setting"], run["seed"])
        if name in maps:
            checked[name] = run_maps(maps, run, masks, source)
    return checked


def _measured(measure: Any, truth: np.ndarray, values: np.ndarray, where: str) -> dict:
    try:
        return measure(truth, values)
    except ValueError as error:
        raise DataError(f"{where} give no metrics: {error}") from error


def _check_metrics(run: Mapping[str, Any], metrics: Mapping[str, float], where: str) -> None:
    wrong = [name for name, value in metrics.items() if run.get(name) != value]
    if wrong:
        raise DataError(
            f"{where} give {', '.join(f'{name} {metrics[name]:.6g}' for name in wrong)}, "
            f"not the record's {', '.join(f'{run.get(name)}' for name in wrong)}"
        )


def read_runs(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """The run records of batch files, in file order; a file changed since its job wrote
    it (its seal broken) raises :class:`DataError` naming it."""
    runs = []
    for path in paths:
        try:
            payload = json.loads(Path(path).read_text())
            data, problem = unseal(payload)
            batch = data["runs"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise DataError(f"{path} is not a batch records file: {error}") from error
        if problem is not None:
            raise DataError(f"{path} {problem}: delete it to let its evaluate job make it again")
        runs.extend(batch)
    return runs


def summarize_records(
    paths: Iterable[str | os.PathLike[str]],
    labels: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """One row per run of the batch files, settings as columns, in a stable order.

    Columns: :data:`IDENTITY_COLUMNS`, then one per setting, then :data:`MEASURE_COLUMNS`.
    A run's ``variant`` is its label in ``labels`` (dataset → setting key → label), else
    its setting key.
    """
    labels = labels or {}
    runs = [
        {**run, "variant": labels.get(run["dataset"], {}).get(run["setting"], run["setting"])}
        for run in read_runs(paths)
    ]
    if not runs:
        raise DataError("no run records to summarise")
    settings = list(
        dict.fromkeys(key for run in runs for key in run["settings"] if key not in IDENTITY_COLUMNS)
    )  # a detector's own ``seed`` setting is the run's seed
    rows = [
        {
            **{column: run.get(column) for column in IDENTITY_COLUMNS},
            **{key: run["settings"].get(key) for key in settings},
            **{column: run.get(column) for column in MEASURE_COLUMNS},
        }
        for run in runs
    ]
    columns = [*IDENTITY_COLUMNS, *settings, *MEASURE_COLUMNS]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    unmeasured = [name for name in PIXEL_METRICS if frame[name].isna().all()]
    frame = frame.drop(columns=unmeasured)  # no run localizes: the table keeps its columns
    frame["cls"] = frame["cls"].astype(str)
    return frame.sort_values(list(SORT_COLUMNS), kind="stable").reset_index(drop=True)


def write_runs_table(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """The long-form runs table as CSV, atomically (integer settings stay integers where
    other methods leave them empty)."""
    settings = [c for c in frame.columns if c not in (*IDENTITY_COLUMNS, *MEASURE_COLUMNS)]
    frame = frame.astype({column: frame[column].convert_dtypes().dtype for column in settings})
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def read_runs_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A runs table of :func:`write_runs_table`; datasets, class ids and variants stay text."""
    return pd.read_csv(path, dtype={"dataset": str, "cls": str, "variant": str, "class_name": str})
