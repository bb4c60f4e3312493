"""Bootstrap intervals of every method on each category of the datasets with defect
masks (MVTec AD, MVTec 3D-AD), read from the workflow's files: a batch's run records,
scores and anomaly maps, and its test embeddings (defect types and masks).

The statistics are :mod:`cap.reporting.bootstrap`'s: stratified resamples of the test
images, each method measured on the same resamples (CAP's seeds averaged on each), paired
differences between methods. Tables are long-form, one row per (category, method,
metric), metrics as fractions; the Markdown shows them in %.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cap.evaluation.embeddings import load_embeddings
from cap.evaluation.records import (
    checked_maps,
    map_name,
    read_maps,
    read_runs,
    read_scores,
    run_scores,
)
from cap.metrics.image import METRICS
from cap.metrics.localization import PIXEL_METRICS
from cap.reporting.bootstrap import MethodRuns, Replicates, bootstrap
from cap.reporting.markdown import markdown
from cap.utils.errors import DataError
from cap.utils.io import atomic_path, write_text_atomic

#: A category's identity columns, first in both tables.
BATCH_COLUMNS: tuple[str, ...] = ("dataset", "backbone", "cls")
#: The defect-free images' type (MVTec's ``good`` folder).
GOOD = "good"
#: The metrics the Markdown shows, in this order.
SHOWN_METRICS: tuple[str, ...] = (*METRICS, *PIXEL_METRICS)


@dataclass(frozen=True)
class BatchFiles:
    """The files of one category's runs (one batch of the workflow)."""

    records: str | os.PathLike[str]
    scores: str | os.PathLike[str]
    maps: str | os.PathLike[str]
    test_embeddings: str | os.PathLike[str]


def batch_replicates(
    files: BatchFiles,
    labels: Mapping[str, Mapping[str, str]],
    *,
    resamples: int,
    seed: int = 0,
) -> tuple[dict[str, str], Replicates]:
    """The category's identity (dataset, backbone, cls) and every variant's metrics on the
    whole test split and on ``resamples`` stratified resamples.

    ``labels`` names the variants (dataset → setting key → label, as the runs table); a
    variant's seeds are its runs of one setting. The exact pixel metrics come from the run
    records, the maps only serve the resamples. Every run's scores and maps are checked
    against its record (digest, count, metrics recomputed): a file changed since its job
    wrote it raises :class:`DataError` naming it.
    """
    runs = read_runs([files.records])
    if not runs:
        raise DataError(f"{files.records} holds no run")
    test = load_embeddings(files.test_embeddings, feature_maps=False)
    if test.defect_type is None or test.masks is None:
        raise DataError(f"{files.test_embeddings} holds no defect types and masks")
    scores = read_scores(files.scores)
    maps = checked_maps(read_maps(files.maps), runs, test.masks, files.maps)
    for name, ids in (("scores", scores["id"].unique()), ("maps", maps["ids"])):
        if list(ids) != list(test.ids):
            raise DataError(f"the {name} of {files.records} are not of {files.test_embeddings}")
    identity = {column: str(runs[0][column]) for column in BATCH_COLUMNS}
    names = labels.get(identity["dataset"], {})
    is_anomaly = np.asarray(test.labels) != 0
    methods: dict[str, MethodRuns] = {}
    for setting in dict.fromkeys(run["setting"] for run in runs):
        own = [run for run in runs if run["setting"] == setting]
        localizes = all(map_name(setting, run["seed"]) in maps for run in own)
        methods[names.get(setting, setting)] = MethodRuns(
            scores=[run_scores(scores, run, is_anomaly, files.scores) for run in own],
            maps=[maps[map_name(setting, run["seed"])] for run in own] if localizes else None,
            pixel=[{m: run[m] for m in PIXEL_METRICS} for run in own] if localizes else None,
        )
    types = [GOOD, *sorted(set(test.defect_type) - {GOOD})]
    defect_labels = np.array([types.index(kind) for kind in test.defect_type])
    replicates = bootstrap(
        is_anomaly, defect_labels, types, methods, test.masks, resamples=resamples, seed=seed
    )
    return identity, replicates


def category_tables(
    batches: Sequence[BatchFiles],
    labels: Mapping[str, Mapping[str, str]],
    *,
    resamples: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The intervals (:meth:`Replicates.table`) and the paired differences of every pair
    of methods (:meth:`Replicates.differences`) of each category, its identity first."""
    intervals, differences = [], []
    for files in batches:
        identity, replicates = batch_replicates(files, labels, resamples=resamples, seed=seed)
        intervals.append(replicates.table().assign(**identity))
        differences.append(replicates.differences().assign(**identity))

    def ordered(frames: list[pd.DataFrame]) -> pd.DataFrame:
        frame = pd.concat(frames, ignore_index=True)
        return frame[[*BATCH_COLUMNS, *(c for c in frame.columns if c not in BATCH_COLUMNS)]]

    return ordered(intervals), ordered(differences)


def category_markdown(intervals: pd.DataFrame, differences: pd.DataFrame) -> str:
    """Per category: each method's metrics in % with their 95% intervals, its AUROC per
    defect type, and the paired differences of the image and pixel AUROC and AUPRO."""
    parts = []
    for (dataset, backbone, cls), rows in intervals.groupby(list(BATCH_COLUMNS), sort=False):
        resamples = int(rows.loc[rows["metric"] == "auroc", "resamples"].iloc[0])
        parts += [
            f"### {cls} ({dataset}, {backbone})",
            f"Estimate on the whole test split [95% percentile interval over {resamples} "
            "bootstrap resamples of its images, stratified good/defective], %; a method of "
            "several seeds is their mean on each resample.",
            markdown(_wide(rows, [m for m in SHOWN_METRICS if m in set(rows["metric"])])),
            "Image AUROC per defect type (good images against that type only), %:",
            markdown(_wide(rows, [m for m in rows["metric"].unique() if ":" in m])),
        ]
        pairs = differences[
            (differences["dataset"] == dataset)
            & (differences["cls"] == cls)
            & differences["metric"].isin(["auroc", *PIXEL_METRICS])
        ]
        parts += [
            "Paired differences (method − versus) on the same resamples, points "
            "[95% interval] (p: two-sided bootstrap p-value):",
            markdown(_paired(pairs)),
        ]
    return "\n\n".join(parts)


def _cell(estimate: float, low: float, high: float) -> str:
    if pd.isna(estimate):
        return "–"
    return f"{100 * estimate:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def _wide(rows: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per method, one column per metric."""
    chosen = rows[rows["metric"].isin(metrics)]
    table = {
        method: {
            row.metric.removeprefix("auroc:"): _cell(row.estimate, row.low, row.high)
            for row in group.itertuples()
        }
        for method, group in chosen.groupby("method", sort=False)
    }
    frame = pd.DataFrame.from_dict(table, orient="index").fillna("–")
    return frame.rename_axis("method").reset_index()


def _paired(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, versus), one column per metric: the difference in points."""
    table: dict[tuple[str, str], dict[str, str]] = {}
    for row in pairs.itertuples():
        cell = f"{_cell(row.difference, row.low, row.high)} p={row.p_value:.3f}"
        table.setdefault((row.method, row.versus), {})[row.metric] = cell
    frame = pd.DataFrame.from_dict(table, orient="index").fillna("–")
    return frame.rename_axis(["method", "versus"]).reset_index()


def write_category_tables(
    intervals: pd.DataFrame,
    differences: pd.DataFrame,
    *,
    intervals_csv: str | os.PathLike[str],
    differences_csv: str | os.PathLike[str],
    md: str | os.PathLike[str],
) -> None:
    """Both tables as CSV, and as Markdown together, atomically."""
    for frame, path in ((intervals, intervals_csv), (differences, differences_csv)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)
    write_text_atomic(md, category_markdown(intervals, differences) + "\n")
