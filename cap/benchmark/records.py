"""The files of a batch of runs (records and scores) and the long-form table of all runs.

A batch's *records* file (``layout.RECORDS``) is JSON: ``{"job": {...}, "runs": [...]}``:
the job's start-up seconds and which runs it fitted, and one object per run with its
identity (dataset, backbone, cls, class_name, preprocessing), task (n_train, n_test,
n_anomalous), backbone (backbone_model, weights) and the record of
:func:`cap.benchmark.runs.make_run` (setting key, method, seed, settings, AUROC, ...).
Its *scores* file (``layout.SCORES``) is a gzipped CSV, one row per (run, test image).
On a dataset with defect masks, its *maps* file (``layout.MAPS``, NumPy ``.npz``) holds
each localizing run's anomaly maps (M, h, w) on the detector's grid, under
:func:`map_name`, and the test ``ids`` in their row order.

Runs are named by their settings' content keys; the runs table gives each the label
of its variant (:meth:`cap.benchmark.planning.Plan.run_labels`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cap.benchmark.layout import map_name
from cap.utils.errors import DataError
from cap.utils.io import atomic_path, write_json_atomic
from cap.utils.localization import PIXEL_METRICS
from cap.utils.metrics import METRICS

#: Columns of a batch's score file.
SCORE_COLUMNS: tuple[str, ...] = ("setting", "seed", "id", "label", "is_anomaly", "score")
#: The first columns of the long-form runs table; every setting follows as a column of
#: its own, then :data:`MEASURE_COLUMNS`.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "dataset", "cls", "class_name", "variant", "setting", "method", "seed", "backbone",
    "preprocessing", "backbone_model", "weights", "n_train", "n_test", "n_anomalous", "chaotic",
)  # fmt: skip
MEASURE_COLUMNS: tuple[str, ...] = (*METRICS, *PIXEL_METRICS, "fit_s", "score_s")
#: Order of the runs in every table.
SORT_COLUMNS: tuple[str, ...] = ("dataset", "backbone", "cls", "variant", "seed")


def write_batch(
    records_path: str | os.PathLike[str],
    scores_path: str | os.PathLike[str],
    *,
    job: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    scores: Sequence[np.ndarray],
    test: pd.DataFrame,
) -> None:
    """Write a batch's records and scores atomically (scores first: the records mark the
    batch complete).

    ``test`` holds the test split's ``id``, ``label`` and ``is_anomaly``, one row per
    item, in the order of each run's ``scores`` (M,).
    """
    frames = [
        test.assign(setting=run["setting"], seed=run["seed"], score=values)
        for run, values in zip(runs, scores, strict=True)
    ]
    with atomic_path(scores_path) as temporary:
        pd.concat(frames).loc[:, list(SCORE_COLUMNS)].to_csv(
            temporary, index=False, compression="gzip"
        )
    write_json_atomic(records_path, {"job": dict(job), "runs": list(runs)})


def write_maps(
    path: str | os.PathLike[str],
    *,
    runs: Sequence[Mapping[str, Any]],
    maps: Sequence[np.ndarray | None],
    ids: Sequence[str],
) -> None:
    """Write the anomaly maps of a batch's localizing runs (those with maps), atomically."""
    arrays = {
        map_name(run["setting"], run["seed"]): values
        for run, values in zip(runs, maps, strict=True)
        if values is not None
    }
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez_compressed(handle, ids=np.asarray(ids, dtype=str), **arrays)


def read_maps(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A maps file: ``ids`` (M,) and each run's maps (M, h, w) by :func:`map_name`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a maps file: {error}") from error


def read_scores(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A batch's score file, ids as text."""
    return pd.read_csv(path, compression="gzip", dtype={"id": str, "setting": str})


def read_runs(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """The run records of batch files, in file order."""
    runs = []
    for path in paths:
        try:
            runs.extend(json.loads(Path(path).read_text())["runs"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataError(f"{path} is not a batch records file: {error}") from error
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
