"""Scores → AUROC, and per-run AUROC records → one summary table."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from cap.utils.errors import DataError
from cap.utils.io import atomic_path, write_json_atomic
from cap.utils.metrics import auroc

#: Columns of the per-image score files written by ``cap score``.
SCORE_COLUMNS = ("id", "label", "is_anomaly", "score")


def write_scores(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write per-image scores as gzipped CSV, atomically."""
    with atomic_path(path) as temporary:
        frame.loc[:, list(SCORE_COLUMNS)].to_csv(temporary, index=False, compression="gzip")


def read_scores(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a score file written by :func:`write_scores`."""
    return pd.read_csv(path, compression="gzip", dtype={"id": str})


def write_auroc_record(
    path: str | os.PathLike[str], scores: pd.DataFrame, tags: Mapping[str, object]
) -> dict[str, object]:
    """Compute the AUROC of one run and store it with the run's tags as JSON."""
    record = dict(tags)
    record.update(
        auroc=auroc(scores["is_anomaly"].to_numpy(), scores["score"].to_numpy()),
        n_test=len(scores),
        n_anomalous=int(scores["is_anomaly"].sum()),
    )
    write_json_atomic(path, record)
    return record


def summarize_records(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per run, from the AUROC JSON files, in a stable order."""
    records = [json.loads(Path(path).read_text()) for path in paths]
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        raise DataError("no AUROC records to summarise")
    sort_keys = [key for key in ("dataset", "backbone", "cls", "variant", "seed") if key in frame]
    return frame.sort_values(sort_keys, kind="stable").reset_index(drop=True)
