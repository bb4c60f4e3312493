"""Claims judged with their uncertainty: paired differences over classes.

A claim says that one row of a table scores above another on a dataset: the paper's
claims (``config/paper_results.yaml``) on the tables that reproduce the paper's, and
a config's own (``report.claims``) on its tables. A side may also be the difference
of two rows (a gap), so that "the gap shrinks" is a claim too. For each class we take
each side's AUROC, each variant averaged over its seeds, and their difference; over the
classes we report the mean difference with a 95% Student-t confidence interval
(``scipy.stats.ttest_1samp``: the classes are the sample, so the interval says how
much the mean gap could move with other classes of the same kind) and a Wilcoxon
signed-rank test (``scipy.stats.wilcoxon``). The verdict follows the interval:

- ``holds``: entirely above 0;
- ``does not hold``: entirely below 0;
- ``inconclusive``: it contains 0, or it cannot be computed (a single class).

A claim made on several datasets that share their classes (one dataset's images on
several backbones) may also be judged *pooled*: per class, the mean of its differences
over the datasets; their mean, with a percentile bootstrap interval that resamples the
classes (each drawn class keeps its differences on every dataset, which are not
independent), and the Wilcoxon test of the per-class means.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cap.evaluation.jobs import ClaimsJob, ClaimSpec
from cap.utils.io import atomic_path

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "inconclusive", "not run"
CONFIDENCE = 0.95
#: Resamples of a pooled claim's bootstrap over classes, and their seed.
POOLED_RESAMPLES = 10_000
POOLED_SEED = 0
#: Columns of :func:`judge_claims`' table.
CLAIM_COLUMNS: tuple[str, ...] = (
    "claim", "dataset", "n_classes", "n_seeds", "difference", "ci_low", "ci_high",
    "wilcoxon_p", "verdict", "scale",
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
    if len(differences) < 2:
        return _judged(differences, math.nan, math.nan)
    return _judged(differences, *t_interval(differences, confidence))


def pooled_test(
    differences: pd.DataFrame,
    confidence: float = CONFIDENCE,
    resamples: int = POOLED_RESAMPLES,
    seed: int = POOLED_SEED,
) -> PairedTest:
    """Judge a claim pooled over datasets from its per-class differences (classes ×
    datasets, only classes present on every dataset): the mean over the datasets of each
    class, whose mean's percentile bootstrap interval over resampled classes decides."""
    per_class = differences.dropna().mean(axis=1).to_numpy(dtype=np.float64)
    if len(per_class) < 2:
        return _judged(per_class, math.nan, math.nan)
    drawn = np.random.default_rng(seed).integers(len(per_class), size=(resamples, len(per_class)))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(per_class[drawn].mean(axis=1), [tail, 100 - tail])
    return _judged(per_class, float(low), float(high))


def _judged(differences: np.ndarray, low: float, high: float) -> PairedTest:
    """The mean difference, its interval, the Wilcoxon test and the verdict."""
    nonzero = differences[differences != 0]
    p = float(stats.wilcoxon(nonzero).pvalue) if len(differences) > 1 and len(nonzero) else math.nan
    verdict = HOLDS if low > 0 else FAILS if high < 0 else INCONCLUSIVE
    return PairedTest(len(differences), float(np.mean(differences)), low, high, p, verdict)


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Student-t interval of the mean of ``values`` (n,): NaN below two values, the
    point itself where they do not spread."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        mean = float(np.mean(values))
        return mean, mean
    low, high = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return float(low), float(high)


def paper_claim_specs(
    paper: Mapping[str, Any], paper_tables: Mapping[str, str | None]
) -> list[ClaimSpec]:
    """The paper's claims, on each of our tables that reproduces the paper's table (none
    where no table of ours does: a config of other experiments judges its own claims)."""
    specs = []
    for claim in paper["claims"]:
        tables = tuple(t for t, key in paper_tables.items() if key == claim.table)
        if tables:
            specs.append(
                ClaimSpec(claim.text, tables, (claim.higher,), (claim.lower,), claim.datasets)
            )
    return specs


#: One side of a claim: a dataset and one variant (or two: the first minus the second).
Side = tuple[str, tuple[str, ...]]


def class_differences(runs: pd.DataFrame, higher: Side, lower: Side) -> pd.Series:
    """Per class: side ``higher`` minus side ``lower`` (AUROC points), where a side is one
    variant's AUROC or the difference of two variants' on its dataset, each the mean over
    its seeds; only the classes where every variant ran (two datasets' classes pair by
    class id: the same images under another preprocessing, say)."""

    def side(dataset: str, variants: tuple[str, ...]) -> pd.Series:
        means = [class_auroc(runs, dataset, variant) for variant in variants]
        return means[0] if len(means) == 1 else means[0] - means[1]

    return (side(*higher) - side(*lower)).dropna()


def class_auroc(runs: pd.DataFrame, dataset: str, variant: str, metric: str = "auroc") -> pd.Series:
    """A variant's AUROC (or another ``metric``; points) per class on a dataset, each the
    mean over its seeds."""
    chosen = runs[(runs["dataset"] == dataset) & (runs["variant"] == variant)]
    return chosen.groupby("cls")[metric].mean() * 100.0


def seeds_per_class(runs: pd.DataFrame, dataset: str, variant: str) -> int:
    """The fewest seeds a variant has on any of its classes on a dataset."""
    chosen = runs[(runs["dataset"] == dataset) & (runs["variant"] == variant)]
    return int(chosen.groupby("cls")["seed"].nunique().min())


def judge_claims(
    runs: pd.DataFrame,
    cells: Mapping[str, pd.DataFrame],
    claims: Sequence[ClaimSpec],
    paper_scale: Mapping[str, Mapping[str, Any]] | None = None,
    table_classes: Mapping[str, Mapping[str, Sequence[int | str]]] | None = None,
) -> pd.DataFrame:
    """Every claim on each of its datasets, one row each.

    ``runs`` is the long-form runs table; ``cells`` our tables' cells, whose ``variant``
    column says which variant fills each entry on each dataset; ``paper_scale`` the
    paper's size per dataset, set beside ours; ``table_classes`` the classes a table keeps
    on a dataset (table → dataset → classes), so that a claim is judged on its table's
    classes, not on every class a variant also ran on for another table.
    """
    rows = []
    for claim in claims:
        variants = _entry_variants(cells, claim.tables)
        judged: dict[str, pd.Series] = {}  # where → its per-class differences
        for dataset, versus in claim.pairs():
            higher = tuple(variants.get((label, dataset)) for label in claim.higher)
            lower = tuple(variants.get((label, versus)) for label in claim.lower)
            where = dataset if versus == dataset else f"{dataset} vs {versus}"
            row = {"claim": claim.text, "dataset": where, "verdict": NOT_RUN}
            if None not in higher + lower:
                kept = runs
                for name in {dataset, versus}:
                    kept = _table_runs(kept, name, claim.tables, table_classes or {})
                differences = class_differences(kept, (dataset, higher), (versus, lower))
                if len(differences):
                    judged[where] = differences
                    seeds = _seeds(kept, (dataset, higher[0]), (versus, lower[0]))
                    row.update(_tested(paired_test(differences.to_numpy()), seeds))
                    sides = [(dataset, v) for v in higher] + [(versus, v) for v in lower]
                    ours = _scale(kept, sides)
                    theirs = _paper_scale((paper_scale or {}).get(dataset))
                    row["scale"] = f"ours {ours}; paper {theirs}"
            rows.append(row)
        if claim.pooled:
            rows.append(_pooled_row(claim, judged))
    return pd.DataFrame.from_records(rows, columns=list(CLAIM_COLUMNS))


def _tested(test: PairedTest, seeds: str) -> dict[str, Any]:
    """A claims row's statistics."""
    return {
        "n_classes": test.n,
        "n_seeds": seeds,
        "difference": test.mean,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "wilcoxon_p": test.wilcoxon_p,
        "verdict": test.verdict,
    }


def _pooled_row(claim: ClaimSpec, judged: Mapping[str, pd.Series]) -> dict[str, Any]:
    """A claim judged on the mean over its datasets (:func:`pooled_test`): a row of its
    own, ``pooled over N datasets``, on the classes every judged dataset has."""
    where = f"pooled over {len(claim.datasets)} datasets"
    row = {"claim": claim.text, "dataset": where, "verdict": NOT_RUN, "scale": "–"}
    if len(judged) == len(claim.datasets):  # every dataset ran: the pool is whole
        test = pooled_test(pd.DataFrame(dict(judged)))
        row.update(_tested(test, "–"))
    return row


def judge_report_claims(
    runs: pd.DataFrame, cells: Mapping[str, pd.DataFrame], paper: Mapping[str, Any], job: ClaimsJob
) -> pd.DataFrame:
    """The report's claims: the paper's, on our tables that reproduce its tables (``paper``
    from :func:`cap.reporting.paper.load_paper_results`), then the config's own."""
    specs = paper_claim_specs(paper, job.paper_tables) + list(job.claims)
    return judge_claims(runs, cells, specs, paper["scale"], job.table_classes)


def write_claims(path: str | os.PathLike[str], claims: pd.DataFrame) -> None:
    """The judged claims as CSV, atomically (what ``cap verify`` compares verdicts on)."""
    with atomic_path(path) as temporary:
        claims.to_csv(temporary, index=False)


def read_claims(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A claims CSV of :func:`write_claims`."""
    return pd.read_csv(path, dtype={"claim": str, "dataset": str, "verdict": str})


def _table_runs(
    runs: pd.DataFrame,
    dataset: str,
    tables: Sequence[str],
    table_classes: Mapping[str, Mapping[str, Sequence[int | str]]],
) -> pd.DataFrame:
    """The runs on the classes every one of ``tables`` keeps on ``dataset``."""
    kept = runs
    for table in tables:
        classes = table_classes.get(table, {}).get(dataset)
        if classes is not None:
            on_dataset = kept["dataset"] == dataset
            kept = kept[~on_dataset | kept["cls"].astype(str).isin([str(c) for c in classes])]
    return kept


def _entry_variants(
    cells: Mapping[str, pd.DataFrame], tables: Sequence[str]
) -> dict[tuple[str, str], str]:
    """(entry label, dataset) → the variant that fills it, over the given tables."""
    variants = {}
    for table in tables:
        frame = cells.get(table)
        if frame is None:
            continue
        computed = frame[(frame["kind"] == "computed") & frame["variant"].notna()]
        keys = zip(computed["entry"], computed["dataset"], strict=True)
        variants.update(zip(keys, computed["variant"], strict=True))
    return variants


def _seeds(runs: pd.DataFrame, *sides: tuple[str, str]) -> str:
    """Seeds per class of each side's (first) variant on its dataset, e.g. "3 vs 1"."""
    return " vs ".join(str(seeds_per_class(runs, dataset, variant)) for dataset, variant in sides)


def _scale(runs: pd.DataFrame, sides: Sequence[tuple[str, str]]) -> str:
    """The size of the runs of the (dataset, variant) ``sides``: normal images per class,
    test images, and the optimisation steps of the trainable variants (epochs × batches
    per epoch); a range where they differ."""
    on_sides = pd.Series(False, index=runs.index)
    for dataset, variant in sides:
        on_sides |= (runs["dataset"] == dataset) & (runs["variant"] == variant)
    chosen = runs[on_sides]
    # the training columns are absent where only untrained variants ran
    trained = chosen.reindex(columns=["n_train", "epochs", "batch_size"]).dropna(subset="epochs")
    steps = trained["epochs"] * np.ceil(trained["n_train"] / trained["batch_size"])
    return " / ".join(_span(values) for values in (chosen["n_train"], chosen["n_test"], steps))


def _span(values: pd.Series) -> str:
    if values.empty:
        return "–"
    low, high = int(values.min()), int(values.max())
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def _paper_scale(scale: Mapping[str, Any] | None) -> str:
    if not scale or scale.get("train_per_class") is None:
        return "–"
    return f"{scale['train_per_class']:,} / {scale['test']:,} / {scale['steps']:,}"
