"""The leaderboard: every method of a table on every dataset, ranked with its uncertainty
and beside its cost.

Per (method, dataset): the mean AUROC over classes (each class first averaged over
seeds), its 95% Student-t interval over classes, the same for AUPR and for the FPR at
95% TPR, the number of classes and seeds, the mean fit and score seconds per run, and a
rank (by AUROC). The rank is 1 + the number of methods
that beat this one on the dataset, where A beats B when the 95% t-interval of their
paired per-class differences (A − B) lies above 0 (:func:`cap.reporting.claims.paired_test`):
methods the classes cannot tell apart share a rank.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cap.metrics.image import METRICS
from cap.reporting.claims import (
    CONFIDENCE,
    HOLDS,
    class_auroc,
    paired_test,
    seeds_per_class,
    t_interval,
)
from cap.reporting.markdown import markdown, number
from cap.utils.io import atomic_path, write_text_atomic

#: The metrics beside AUROC, each with its interval: ``<metric>_pct``, ``<metric>_ci_low``,
#: ``<metric>_ci_high`` (runs tables made before they were recorded leave them empty).
OTHER_METRICS: tuple[str, ...] = tuple(metric for metric in METRICS if metric != "auroc")
INTERVAL_SUFFIXES: tuple[str, ...] = ("_pct", "_ci_low", "_ci_high")
#: Columns of the leaderboard CSV.
LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "dataset", "preprocessing", "entry", "variant", "rank", "auroc_pct", "ci_low", "ci_high",
    *(f"{metric}{suffix}" for metric in OTHER_METRICS for suffix in INTERVAL_SUFFIXES),
    "n_classes", "n_seeds", "fit_s", "score_s",
)  # fmt: skip


def build_leaderboard(runs: pd.DataFrame, spec: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (entry, dataset) of table ``spec`` (as :func:`build_table` reads it)
    with runs, best rank first on each dataset."""
    rows = []
    for dataset in spec["datasets"]:
        on_dataset, per_class = [], {}
        for entry in spec["entries"]:
            variant = entry["variants"].get(dataset)
            chosen = runs[(runs["dataset"] == dataset) & (runs["variant"] == variant)]
            if chosen.empty:
                continue
            values = per_class[entry["label"]] = class_auroc(runs, dataset, variant)
            low, high = t_interval(values.to_numpy())
            on_dataset.append(
                {
                    "dataset": dataset,
                    "preprocessing": _one(chosen, "preprocessing"),
                    "entry": entry["label"],
                    "variant": variant,
                    "auroc_pct": float(values.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    **{
                        column: value
                        for metric in OTHER_METRICS
                        for column, value in _summary(runs, dataset, variant, metric).items()
                    },
                    "n_classes": chosen["cls"].nunique(),
                    "n_seeds": seeds_per_class(runs, dataset, variant),
                    "fit_s": chosen["fit_s"].mean(),
                    "score_s": chosen["score_s"].mean(),
                }
            )
        ranks = _ranks(per_class)
        for row in on_dataset:
            row["rank"] = ranks[row["entry"]]
        rows += sorted(on_dataset, key=lambda row: (row["rank"], -row["auroc_pct"]))
    return pd.DataFrame.from_records(rows, columns=list(LEADERBOARD_COLUMNS))


def _summary(runs: pd.DataFrame, dataset: str, variant: str, metric: str) -> dict[str, float]:
    """``metric``'s mean over classes (points) and its t-interval; NaN where not recorded."""
    if metric not in runs or runs[metric].isna().all():
        return {f"{metric}_pct": np.nan, f"{metric}_ci_low": np.nan, f"{metric}_ci_high": np.nan}
    values = class_auroc(runs, dataset, variant, metric)
    low, high = t_interval(values.to_numpy())
    return {
        f"{metric}_pct": float(values.mean()),
        f"{metric}_ci_low": low,
        f"{metric}_ci_high": high,
    }


def _ranks(per_class: Mapping[str, pd.Series]) -> dict[str, int]:
    """1 + the number of entries whose paired interval over classes lies above each one's."""
    beaten_by = {label: 0 for label in per_class}
    for label, values in per_class.items():
        for other, theirs in per_class.items():
            if other == label:
                continue
            differences = (theirs - values).dropna().to_numpy()
            if len(differences) and paired_test(differences).verdict == HOLDS:
                beaten_by[label] += 1
    return {label: 1 + count for label, count in beaten_by.items()}


def _one(frame: pd.DataFrame, column: str) -> str:
    values = frame[column].dropna().unique() if column in frame else []
    return ", ".join(map(str, values)) or "–"


def leaderboard_markdown(frame: pd.DataFrame, title: str) -> str:
    """One table per dataset: rank, method, AUROC with its interval, classes and seeds, and
    the cost per run; with how to read it."""
    legend = (
        f"AUROC (%): mean over classes (each class averaged over its seeds) with its "
        f"{CONFIDENCE:.0%} Student-t interval over classes. Rank: 1 + the number of methods "
        f"whose paired {CONFIDENCE:.0%} t-interval over classes lies above this one's, so "
        "methods the classes cannot tell apart share a rank. AUPR (anomalies positive) and "
        "FPR at 95% TPR (lower is better), in %: the same mean and interval over classes. "
        "Seconds: mean per run, of one "
        "process on this machine (fit: training or storing the bank; score: the whole test "
        "split)."
    )
    parts = [f"**{title}**", legend]
    for dataset, rows in frame.groupby("dataset", sort=False):
        parts.append(f"### {dataset} (preprocessing: {rows['preprocessing'].iloc[0]})")
        shown = pd.DataFrame(
            {
                "rank": rows["rank"].astype(int).astype(str),
                "method": rows["entry"],
                "AUROC": _with_interval(rows["auroc_pct"], rows["ci_low"], rows["ci_high"]),
                "AUPR": _with_interval(
                    *(rows[f"aupr{s}"] for s in ("_pct", "_ci_low", "_ci_high"))
                ),
                "FPR@95%TPR": _with_interval(
                    *(rows[f"fpr95{s}"] for s in ("_pct", "_ci_low", "_ci_high"))
                ),
                "classes × seeds": [
                    f"{c} × {s}" for c, s in zip(rows["n_classes"], rows["n_seeds"], strict=True)
                ],
                "fit s": rows["fit_s"].map(lambda v: number(v, 2)),
                "score s": rows["score_s"].map(lambda v: number(v, 2)),
            }
        )
        parts.append(markdown(shown))
    return "\n\n".join(parts)


def _with_interval(means: pd.Series, lows: pd.Series, highs: pd.Series) -> list[str]:
    return [
        "–" if pd.isna(mean) else f"{number(mean)} [{number(low)}, {number(high)}]"
        for mean, low, high in zip(means, lows, highs, strict=True)
    ]


def write_leaderboard(
    frame: pd.DataFrame, csv: str | os.PathLike[str], md: str | os.PathLike[str], title: str
) -> None:
    """The leaderboard as CSV and Markdown, atomically."""
    with atomic_path(csv) as temporary:
        frame.to_csv(temporary, index=False)
    write_text_atomic(md, leaderboard_markdown(frame, title) + "\n")
