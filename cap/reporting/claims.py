"""The paper's claims judged with their uncertainty: paired differences over classes.

A claim says that one row of a paper table scores above another on a dataset
(``config/paper_results.yaml``, ``claims``). For each class we take the AUROC of
both variants, each averaged over its seeds, and their difference; over the
classes we report the mean difference with a 95% Student-t confidence interval
(``scipy.stats.ttest_1samp``: the classes are the sample, so the interval says how
much the mean gap could move with other classes of the same kind) and a Wilcoxon
signed-rank test (``scipy.stats.wilcoxon``). The verdict follows the interval:

- ``holds``: entirely above 0;
- ``does not hold``: entirely below 0;
- ``inconclusive``: it contains 0, or it cannot be computed (a single class).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "inconclusive", "not run"
CONFIDENCE = 0.95
#: Columns of :func:`judge_claims`' table.
CLAIM_COLUMNS: tuple[str, ...] = (
    "claim", "dataset", "n_classes", "n_seeds", "difference", "ci_low", "ci_high",
    "wilcoxon_p", "verdict", "n_train", "n_test", "steps", "paper_scale",
)  # fmt: skip


@dataclass(frozen=True)
class PairedTest:
    """The classes' paired differences (AUROC points) and what they say."""

    n: int  # classes
    mean: float  # mean difference, higher − lower
    ci_low: float  # 95% t-interval of the mean (NaN with one class)
    ci_high: float
    wilcoxon_p: float  # two-sided signed-rank p-value (NaN where undefined)
    verdict: str  # HOLDS, FAILS or INCONCLUSIVE


def paired_test(differences: np.ndarray, confidence: float = CONFIDENCE) -> PairedTest:
    """Judge per-class differences (n,): the t-interval decides, Wilcoxon is reported beside."""
    differences = np.asarray(differences, dtype=np.float64)
    n, mean = len(differences), float(np.mean(differences))
    if n < 2:
        return PairedTest(n, mean, math.nan, math.nan, math.nan, INCONCLUSIVE)
    if np.ptp(differences) == 0:  # no spread: the interval is the point itself
        low = high = mean
    else:
        low, high = stats.ttest_1samp(differences, 0.0).confidence_interval(confidence)
    nonzero = differences[differences != 0]
    p = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) else math.nan
    verdict = HOLDS if low > 0 else FAILS if high < 0 else INCONCLUSIVE
    return PairedTest(n, mean, float(low), float(high), p, verdict)


def class_differences(runs: pd.DataFrame, dataset: str, higher: str, lower: str) -> pd.Series:
    """Per class: AUROC (points) of variant ``higher`` minus ``lower``, each the mean over its
    seeds; only classes where both ran."""
    on_dataset = runs[runs["dataset"] == dataset]
    means = [
        on_dataset[on_dataset["variant"] == variant].groupby("cls")["auroc"].mean() * 100.0
        for variant in (higher, lower)
    ]
    return (means[0] - means[1]).dropna()


def judge_claims(
    runs: pd.DataFrame,
    cells: Mapping[str, pd.DataFrame],
    paper: Mapping[str, Any],
    paper_tables: Mapping[str, str | None],
) -> pd.DataFrame:
    """Every claim of ``paper["claims"]`` on each of its datasets, one row each.

    ``runs`` is the long-form runs table; ``cells`` our tables' cells (their
    ``variant`` column says which variant fills each entry on each dataset), tied to
    the paper's tables by ``paper_tables`` (our table → the paper's table or None).
    """
    rows = []
    for claim in paper["claims"]:
        variants = _entry_variants(
            cells, [t for t, key in paper_tables.items() if key == claim.table]
        )
        for dataset in claim.datasets:
            pair = variants.get((claim.higher, dataset)), variants.get((claim.lower, dataset))
            row = {"claim": claim.text, "dataset": dataset, "verdict": NOT_RUN}
            differences = (
                class_differences(runs, dataset, *pair)
                if None not in pair
                else pd.Series(dtype=float)
            )
            if len(differences):
                test = paired_test(differences.to_numpy())
                row.update(
                    n_classes=test.n,
                    n_seeds=_seeds(runs, dataset, pair),
                    difference=test.mean,
                    ci_low=test.ci_low,
                    ci_high=test.ci_high,
                    wilcoxon_p=test.wilcoxon_p,
                    verdict=test.verdict,
                    **_scale(runs, dataset, pair),
                )
            row["paper_scale"] = _paper_scale(paper.get("scale", {}).get(dataset))
            rows.append(row)
    return pd.DataFrame.from_records(rows, columns=list(CLAIM_COLUMNS))


def _entry_variants(
    cells: Mapping[str, pd.DataFrame], tables: list[str]
) -> dict[tuple[str, str], str]:
    """(entry label, dataset) → the variant that fills it, over the given tables."""
    variants = {}
    for table in tables:
        frame = cells.get(table)
        if frame is None:
            continue
        computed = frame[(frame["kind"] == "computed") & frame["variant"].notna()]
        variants.update(
            zip(
                zip(computed["entry"], computed["dataset"], strict=True),
                computed["variant"],
                strict=True,
            )
        )
    return variants


def _seeds(runs: pd.DataFrame, dataset: str, variants: tuple[str, str]) -> str:
    """Seeds per class of each side, e.g. "3 vs 1"."""
    on_dataset = runs[runs["dataset"] == dataset]
    counts = [
        int(on_dataset[on_dataset["variant"] == v].groupby("cls")["seed"].nunique().min())
        for v in variants
    ]
    return f"{counts[0]} vs {counts[1]}"


def _scale(runs: pd.DataFrame, dataset: str, variants: tuple[str, str]) -> dict[str, Any]:
    """Our run's size: normal images per class (median over classes), test images, and the
    optimisation steps of a trainable side (epochs × batches per epoch)."""
    pair = runs[(runs["dataset"] == dataset) & runs["variant"].isin(variants)]
    trained = pair[pair["epochs"].notna()] if "epochs" in pair else pair.iloc[0:0]
    steps = (
        int((trained["epochs"] * np.ceil(trained["n_train"] / trained["batch_size"])).median())
        if len(trained)
        else None
    )
    return {
        "n_train": int(pair["n_train"].median()),
        "n_test": int(pair["n_test"].median()),
        "steps": steps,
    }


def _paper_scale(scale: Mapping[str, Any] | None) -> str:
    if not scale or scale.get("train_per_class") is None:
        return "–"
    return f"{scale['train_per_class']:,} / {scale['test']:,} / {scale['steps']:,}"
