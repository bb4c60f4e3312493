"""Is the methods' ranking the same on every backbone?

The same images (one dataset's classes) embedded by several backbones give one *dataset*
entry of the config per backbone; a table's entries (methods) ran on each of them, per
class and seed. Per (dataset, method) we take the mean of a metric over classes, each
class first averaged over its seeds (:func:`method_means`), and ask whether the backbones
order the methods alike (:func:`rank_concordance`):

- per pair of backbones, Kendall's τ-b between their method means (1: the same order,
  −1: reversed), with Spearman's ρ beside it;
- over all backbones, Kendall's W, the coefficient of concordance (with the correction for
  ties): 1 when every backbone ranks the methods alike, near 1/k (k backbones) when their
  rankings are unrelated.

Both compare only the methods that ran on every backbone and the classes every one of them
has, so that each backbone ranks the same methods on the same images. Their 95% intervals
are percentile bootstraps over *classes*: a resample draws classes with replacement, the
same classes for every backbone and method (the backbones embed the same images, so the
classes pair across them), and recomputes every method mean; seeds are not resampled. W's
p-value is a permutation test of the null hypothesis :data:`NULL_HYPOTHESIS`: each
backbone's method means are shuffled independently, and p = (1 + #{W* ≥ W}) / (1 + P)
over P permutations, so it is never 0.

Ranks put the best method first (rank 1): the highest AUROC or AUPR, the lowest FPR at
95% TPR (:data:`cap.metrics.image.LOWER_IS_BETTER`; :func:`best_first_ranks`). Reversing
every backbone's order at once changes neither τ, ρ nor W, so the direction only matters
for the ranks and orders shown.

In this module k is the number of backbones (datasets), m the number of methods, n the
number of classes, B the number of bootstrap resamples and P of permutations.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from scipy import stats

from cap.metrics.image import LOWER_IS_BETTER
from cap.reporting.claims import CONFIDENCE, class_auroc, seeds_per_class, t_interval
from cap.reporting.figures import save_figure
from cap.reporting.markdown import markdown, number
from cap.reporting.tables import METRIC_NAMES
from cap.utils.errors import DataError
from cap.utils.io import atomic_path, write_text_atomic

#: Columns of :func:`method_means`: one row per (dataset, entry) with runs.
MEANS_COLUMNS: tuple[str, ...] = (
    "dataset", "entry", "variant", "metric", "mean_pct", "ci_low", "ci_high", "rank",
    "n_classes", "n_seeds",
)  # fmt: skip
#: Columns of :func:`rank_concordance`'s pairs: one row per pair of datasets.
PAIR_COLUMNS: tuple[str, ...] = (
    "dataset_a", "dataset_b", "kendall_tau", "tau_ci_low", "tau_ci_high", "spearman_rho",
    "n_methods", "n_classes",
)  # fmt: skip
#: Columns of the statistics CSV (:func:`statistics_frame`): one row per statistic.
STATISTIC_COLUMNS: tuple[str, ...] = (
    "statistic", "dataset_a", "dataset_b", "estimate", "ci_low", "ci_high", "p_value",
    "n_methods", "n_datasets", "n_classes",
)  # fmt: skip
#: What W's permutation p-value tests.
NULL_HYPOTHESIS = (
    "the rankings are unrelated across backbones: each backbone orders the methods as a "
    "random permutation, independently of the others"
)
#: The fewest backbones, common methods and common classes a concordance needs.
MIN_DATASETS, MIN_METHODS, MIN_CLASSES = 2, 3, 2
#: Size (inches) of the methods × backbones figure.
CONCORDANCE_SIZE: tuple[float, float] = (9.0, 5.0)
#: Share of a method's slot on the x axis that its backbones' markers spread over.
SLOT_WIDTH = 0.7
MARKERS = "osD^vP*Xhp<>"


def best_first_ranks(values: np.ndarray, metric: str) -> np.ndarray:
    """Ranks (…, m) of ``values`` (…, m) along the last axis: 1 = best for ``metric``
    (highest, or lowest where it is lower-is-better), ties sharing their mean rank."""
    values = np.asarray(values, dtype=np.float64)
    return stats.rankdata(values if metric in LOWER_IS_BETTER else -values, axis=-1)


def method_means(
    runs: pd.DataFrame,
    spec: Mapping[str, Any],
    metric: str = "auroc",
    *,
    datasets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (dataset, entry) of table ``spec`` with runs (:data:`MEANS_COLUMNS`).

    ``mean_pct``: ``metric`` (%) averaged over the entry's classes on the dataset, each
    class first averaged over its seeds; ``ci_low``/``ci_high``: its 95% Student-t interval
    over classes (:func:`cap.reporting.claims.t_interval`); ``rank``: among the entries
    with runs on the dataset, 1 = best (:func:`best_first_ranks`; a plain order, unlike the
    leaderboard's ranks that tie methods the classes cannot tell apart); ``n_seeds``: the
    fewest seeds of any class. ``datasets`` restricts the table's datasets.
    """
    _check_metric(runs, metric)
    rows = []
    for dataset in _datasets(spec, datasets):
        on_dataset = []
        for entry in spec["entries"]:
            variant = entry["variants"].get(dataset)
            values = _class_values(runs, dataset, variant, metric)
            if values.empty:
                continue
            low, high = t_interval(values.to_numpy())
            on_dataset.append(
                {
                    "dataset": dataset,
                    "entry": str(entry["label"]),
                    "variant": variant,
                    "metric": metric,
                    "mean_pct": float(values.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "n_classes": len(values),
                    "n_seeds": seeds_per_class(_clean(runs, metric), dataset, variant),
                }
            )
        ranks = best_first_ranks(np.array([row["mean_pct"] for row in on_dataset]), metric)
        for row, rank in zip(on_dataset, ranks, strict=True):
            row["rank"] = float(rank)
        rows += on_dataset
    return pd.DataFrame.from_records(rows, columns=list(MEANS_COLUMNS))


@dataclass(frozen=True)
class ClassCube:
    """Per-class values of the methods on every backbone, on the classes they all have."""

    values: np.ndarray  # (k, m, n) metric (%) per class, each the mean over its seeds
    datasets: list[str]  # (k,) backbones (datasets) with runs, in the table's order
    methods: list[str]  # (m,) entries with runs on every one of them
    classes: list[str]  # (n,) classes every method has on every backbone
    left_out_datasets: list[str]  # the table's datasets without any runs
    left_out_methods: list[str]  # entries missing on some backbone
    left_out_classes: list[str]  # classes missing for some method on some backbone


def class_cube(
    runs: pd.DataFrame,
    spec: Mapping[str, Any],
    metric: str = "auroc",
    *,
    datasets: Sequence[str] | None = None,
) -> ClassCube:
    """The per-class values :func:`rank_concordance` compares, and what it leaves out.

    Classes pair by id across backbones; where the runs name their classes
    (``class_name``), a class id named differently on two datasets (other images, such as
    Fashion-MNIST beside CIFAR-10) is a :class:`DataError`.
    """
    _check_metric(runs, metric)
    wanted = _datasets(spec, datasets)
    per_class = {
        (dataset, str(entry["label"])): _class_values(
            runs, dataset, entry["variants"].get(dataset), metric
        )
        for dataset in wanted
        for entry in spec["entries"]
    }
    kept = [d for d in wanted if any(not v.empty for (on, _), v in per_class.items() if on == d)]
    labels = [str(entry["label"]) for entry in spec["entries"]]
    methods = [label for label in labels if all(not per_class[d, label].empty for d in kept)]
    if len(kept) < MIN_DATASETS:
        raise DataError(
            f"table {spec.get('name', '?')}: a rank concordance needs runs on at least "
            f"{MIN_DATASETS} datasets; {metric} runs on {kept or 'none'} of {wanted}"
        )
    if len(methods) < MIN_METHODS:
        raise DataError(
            f"table {spec.get('name', '?')}: a rank concordance needs at least {MIN_METHODS} "
            f"methods that ran on every dataset {kept}; only {methods or 'none'} did"
        )
    every = {str(c) for (d, _), v in per_class.items() if d in kept for c in v.index}
    common = sorted(
        (c for c in every if all(c in per_class[d, m].index for d in kept for m in methods)),
        key=_natural,
    )
    if len(common) < MIN_CLASSES:
        raise DataError(
            f"table {spec.get('name', '?')}: a rank concordance needs at least {MIN_CLASSES} "
            f"classes that every method {methods} has on every dataset {kept}; "
            f"common: {common or 'none'}"
        )
    _check_class_names(runs, kept, common)
    values = np.array(
        [[per_class[d, label].loc[common].to_numpy() for label in methods] for d in kept]
    )  # (k, m, n)
    return ClassCube(
        values=values,
        datasets=kept,
        methods=methods,
        classes=common,
        left_out_datasets=[d for d in wanted if d not in kept],
        left_out_methods=[label for label in labels if label not in methods],
        left_out_classes=sorted(every - set(common), key=_natural),
    )


def rank_concordance(
    runs: pd.DataFrame,
    spec: Mapping[str, Any],
    metric: str = "auroc",
    resamples: int = 2000,
    permutations: int = 10000,
    seed: int = 0,
    *,
    datasets: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """How alike the backbones (the table's datasets) rank the methods, with uncertainty.

    Returns ``pairs`` (:data:`PAIR_COLUMNS`: per pair of datasets, Kendall's τ-b of their
    method means with its 95% bootstrap interval over classes, and Spearman's ρ) and
    ``overall``: ``kendall_w`` with ``w_ci_low``/``w_ci_high`` (bootstrap over classes)
    and ``p_value`` (permutation test of :data:`NULL_HYPOTHESIS`), the counts
    ``n_methods``/``n_datasets``/``n_classes``, what was compared (``methods``,
    ``datasets``, ``classes``) and left out (``left_out_methods``: entries missing on some
    dataset; ``left_out_datasets``: datasets without runs; ``left_out_classes``), and the
    settings (``metric``, ``resamples``, ``permutations``, ``seed``). A resample where a
    backbone ties every method has no τ and is left out of τ's interval.

    Raises :class:`DataError` with fewer than 2 datasets with runs, 3 methods on every one
    of them, or 2 classes they all have.
    """
    if resamples < 1 or permutations < 1:
        raise DataError(f"need resamples ≥ 1 and permutations ≥ 1, got {resamples}, {permutations}")
    cube = class_cube(runs, spec, metric, datasets=datasets)
    k, m, n = cube.values.shape
    rng = np.random.default_rng(seed)
    means = cube.values.mean(axis=2)  # (k, m)
    ranks = best_first_ranks(means, metric)  # (k, m)
    # the same resampled classes for every backbone and method: counts (B, n) of each class
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)
    boot_means = np.einsum("kmn,bn->bkm", cube.values, counts) / n  # (B, k, m)
    taus, boot_taus = kendall_tau_b(means), kendall_tau_b(boot_means)  # (k, k), (B, k, k)
    w, boot_w = kendall_w(ranks), kendall_w(best_first_ranks(boot_means, metric))  # (), (B,)
    shuffled = rng.permuted(np.broadcast_to(ranks, (permutations, k, m)), axis=-1)  # (P, k, m)
    null_w = kendall_w(shuffled)  # (P,)
    pairs = []
    for a, b in combinations(range(k), 2):
        low, high = _percentile_interval(boot_taus[:, a, b])
        pairs.append(
            {
                "dataset_a": cube.datasets[a],
                "dataset_b": cube.datasets[b],
                "kendall_tau": float(taus[a, b]),
                "tau_ci_low": low,
                "tau_ci_high": high,
                "spearman_rho": float(stats.spearmanr(means[a], means[b]).statistic),
                "n_methods": m,
                "n_classes": n,
            }
        )
    w_low, w_high = _percentile_interval(boot_w)
    at_least = np.count_nonzero(null_w >= float(w) - 1e-12)  # W* ≥ W, up to rounding
    overall = {
        "metric": metric,
        "kendall_w": float(w),
        "w_ci_low": w_low,
        "w_ci_high": w_high,
        "p_value": (1 + at_least) / (1 + permutations) if np.isfinite(w) else math.nan,
        "null_hypothesis": NULL_HYPOTHESIS,
        "n_methods": m,
        "n_datasets": k,
        "n_classes": n,
        "methods": cube.methods,
        "datasets": cube.datasets,
        "classes": cube.classes,
        "left_out_methods": cube.left_out_methods,
        "left_out_datasets": cube.left_out_datasets,
        "left_out_classes": cube.left_out_classes,
        "resamples": resamples,
        "permutations": permutations,
        "seed": seed,
    }
    return pd.DataFrame.from_records(pairs, columns=list(PAIR_COLUMNS)), overall


def kendall_tau_b(means: np.ndarray) -> np.ndarray:
    """Kendall's τ-b (…, k, k) between every two rows of ``means`` (…, k, m).

    With s = sign(x_i − x_j) over the m(m−1)/2 pairs of methods, τ-b(a, b) =
    Σ s_a s_b / √(Σ s_a² Σ s_b²) = (concordant − discordant) / √(untied in a × untied in b),
    as :func:`scipy.stats.kendalltau` computes it; NaN where a row ties everything.
    """
    first, second = np.triu_indices(means.shape[-1], k=1)
    signs = np.sign(means[..., first] - means[..., second])  # (…, k, m(m−1)/2)
    products = np.einsum("...ap,...bp->...ab", signs, signs)  # (…, k, k)
    untied = np.diagonal(products, axis1=-2, axis2=-1)  # (…, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return products / np.sqrt(untied[..., :, None] * untied[..., None, :])


def kendall_w(ranks: np.ndarray) -> np.ndarray:
    """Kendall's W (…) of ``ranks`` (…, k, m): k raters (backbones) ranking m items.

    W = 12 S / (k²(m³ − m) − k Σ_j T_j), S the sum of squared deviations of the items' rank
    sums from their mean, T_j = Σ (t³ − t) over rater j's groups of t tied items (the tie
    correction); NaN where every rater ties every item.
    """
    k, m = ranks.shape[-2:]
    sums = ranks.sum(axis=-2)  # (…, m)
    spread = ((sums - sums.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)  # (…)
    group = (ranks[..., :, None] == ranks[..., None, :]).sum(axis=-1)  # (…, k, m) tie sizes
    ties = (group.astype(np.float64) ** 2 - 1).sum(axis=(-2, -1))  # Σ_j Σ_groups t³ − t
    with np.errstate(invalid="ignore", divide="ignore"):
        return 12.0 * spread / (k**2 * (m**3 - m) - k * ties)


def plot_methods_by_backbones(
    means: pd.DataFrame,
    out_prefix: str | os.PathLike[str],
    title: str = "",
    metric: str = "auroc",
) -> list[Path]:
    """Methods × backbones: each method's mean (%) with its interval, one marker per backbone.

    ``means`` from :func:`method_means`. Methods run along x, best mean over the backbones
    they ran on first; each backbone (dataset) has a colour and marker, spread within the
    method's slot. The figure is :data:`CONCORDANCE_SIZE` inches.
    """
    if means.empty:
        raise DataError("no method means to plot")
    order = _method_order(means, metric)
    datasets = list(dict.fromkeys(means["dataset"]))
    slot = {label: i for i, label in enumerate(order)}
    figure = Figure(figsize=CONCORDANCE_SIZE, layout="constrained")
    axes = figure.add_subplot()
    colors = sns.color_palette("colorblind", len(datasets))
    step = SLOT_WIDTH / len(datasets)
    for i, (color, dataset) in enumerate(zip(colors, datasets, strict=True)):
        rows = means[means["dataset"] == dataset]
        x = rows["entry"].map(slot).to_numpy() + (i - (len(datasets) - 1) / 2) * step
        below = (rows["mean_pct"] - rows["ci_low"]).clip(lower=0).fillna(0.0)
        above = (rows["ci_high"] - rows["mean_pct"]).clip(lower=0).fillna(0.0)
        axes.errorbar(
            x, rows["mean_pct"], yerr=[below.to_numpy(), above.to_numpy()], color=color,
            marker=MARKERS[i % len(MARKERS)], markersize=5, linestyle="none", capsize=2,
            elinewidth=1, label=dataset,
        )  # fmt: skip
    axes.set_xticks(range(len(order)), order, rotation=30, ha="right")
    axes.set_xticks(np.arange(len(order) - 1) + 0.5, minor=True)  # slot separators
    axes.tick_params(axis="x", which="minor", length=0)
    axes.grid(axis="x", which="minor", alpha=0.4)
    axes.grid(axis="y", alpha=0.3)
    axes.set_xlim(-0.5, len(order) - 0.5)
    lower = " (lower is better)" if metric in LOWER_IS_BETTER else ""
    axes.set(ylabel=f"{METRIC_NAMES.get(metric, metric)} (%){lower}", title=title)
    figure.legend(
        loc="outside lower center", ncols=min(len(datasets), 5), fontsize="small",
        title=f"backbone (dataset); bars: {CONFIDENCE:.0%} t-interval over classes",
        title_fontsize="small",
    )  # fmt: skip
    return save_figure(figure, out_prefix)


def concordance_markdown(
    means: pd.DataFrame, pairs: pd.DataFrame, overall: Mapping[str, Any], title: str = ""
) -> str:
    """The method means (methods × datasets), the pairwise τ table and W, with how to read
    them and what was left out."""
    metric = str(overall["metric"])
    order = _method_order(means, metric)
    datasets = list(dict.fromkeys(means["dataset"]))
    text = {
        (row.dataset, row.entry): f"{number(row.mean_pct)} [{number(row.ci_low)}, "
        f"{number(row.ci_high)}]"
        for row in means.itertuples()
    }
    wide = pd.DataFrame(
        {"method": order, **{d: [text.get((d, label), "–") for label in order] for d in datasets}}
    )
    taus = pd.DataFrame(
        {
            "backbones": [
                f"{a} vs {b}" for a, b in zip(pairs["dataset_a"], pairs["dataset_b"], strict=True)
            ],
            "Kendall τ-b [95% bootstrap]": [
                f"{number(t, 2)} [{number(low, 2)}, {number(high, 2)}]"
                for t, low, high in zip(
                    pairs["kendall_tau"], pairs["tau_ci_low"], pairs["tau_ci_high"], strict=True
                )
            ],
            "Spearman ρ": pairs["spearman_rho"].map(lambda v: number(v, 2)),
        }
    )
    lower = ", lower is better" if metric in LOWER_IS_BETTER else ""
    left_out = overall["left_out_methods"]
    legend = (
        f"{METRIC_NAMES.get(metric, metric)} (%{lower}): mean over classes (each class first "
        f"averaged over its seeds) with its {CONFIDENCE:.0%} Student-t interval over classes; "
        "methods ordered by their mean over the backbones they ran on, best first."
    )
    compared = (
        f"The rankings compare the {overall['n_methods']} methods that ran on every one of the "
        f"{overall['n_datasets']} backbones, on the {overall['n_classes']} classes they all have"
        + (f"; left out (missing on some backbone): {', '.join(left_out)}" if left_out else "")
        + (
            f"; classes left out: {', '.join(overall['left_out_classes'])}"
            if overall["left_out_classes"]
            else ""
        )
        + (
            f"; datasets without runs: {', '.join(overall['left_out_datasets'])}"
            if overall["left_out_datasets"]
            else ""
        )
        + ". Kendall's τ-b between two backbones' method means (1: the same order, −1: "
        f"reversed), with its {CONFIDENCE:.0%} percentile bootstrap interval over classes "
        f"({overall['resamples']:,} resamples; the same resampled classes for every backbone "
        "and method, since the backbones embed the same images); Spearman's ρ beside it."
    )
    sentence = (
        f"Kendall's W across the {overall['n_datasets']} backbones: "
        f"{number(overall['kendall_w'], 2)} [{number(overall['w_ci_low'], 2)}, "
        f"{number(overall['w_ci_high'], 2)}] ({CONFIDENCE:.0%} bootstrap over classes; 1 = "
        f"the same ranking everywhere, about 1/{overall['n_datasets']} for unrelated ones), "
        f"permutation p = {_p_text(overall['p_value'])} ({overall['permutations']:,} "
        f"permutations; null hypothesis: {NULL_HYPOTHESIS})."
    )
    parts = [f"**{title}**"] if title else []
    parts += [legend, markdown(wide), compared, markdown(taus), sentence]
    return "\n\n".join(parts)


def statistics_frame(pairs: pd.DataFrame, overall: Mapping[str, Any]) -> pd.DataFrame:
    """The statistics CSV (:data:`STATISTIC_COLUMNS`), one row per statistic.

    Per pair of datasets a ``kendall_tau`` row (its bootstrap interval in ``ci_low``/
    ``ci_high``) and a ``spearman_rho`` row (no interval); then one ``kendall_w`` row over
    all datasets (``dataset_a``/``dataset_b`` empty, its permutation ``p_value``).
    """
    rows = []
    for pair in pairs.itertuples():
        common = {
            "dataset_a": pair.dataset_a,
            "dataset_b": pair.dataset_b,
            "n_methods": pair.n_methods,
            "n_datasets": 2,
            "n_classes": pair.n_classes,
        }
        rows.append(
            {
                "statistic": "kendall_tau",
                "estimate": pair.kendall_tau,
                "ci_low": pair.tau_ci_low,
                "ci_high": pair.tau_ci_high,
                **common,
            }
        )
        rows.append({"statistic": "spearman_rho", "estimate": pair.spearman_rho, **common})
    rows.append(
        {
            "statistic": "kendall_w",
            "estimate": overall["kendall_w"],
            "ci_low": overall["w_ci_low"],
            "ci_high": overall["w_ci_high"],
            "p_value": overall["p_value"],
            "n_methods": overall["n_methods"],
            "n_datasets": overall["n_datasets"],
            "n_classes": overall["n_classes"],
        }
    )
    return pd.DataFrame.from_records(rows, columns=list(STATISTIC_COLUMNS))


def write_concordance(
    means: pd.DataFrame,
    pairs: pd.DataFrame,
    overall: Mapping[str, Any],
    out_prefix: str | os.PathLike[str],
    *,
    title: str = "",
) -> list[Path]:
    """Write, atomically: ``{prefix}.csv`` (:func:`statistics_frame`), ``{prefix}_means.csv``
    (:data:`MEANS_COLUMNS`), ``{prefix}.md`` and the figure ``{prefix}.png``/``.pdf``."""
    csv, means_csv, md = (Path(f"{out_prefix}{s}") for s in (".csv", "_means.csv", ".md"))
    for frame, path in ((statistics_frame(pairs, overall), csv), (means, means_csv)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)
    write_text_atomic(md, concordance_markdown(means, pairs, overall, title) + "\n")
    figure = plot_methods_by_backbones(means, out_prefix, title, str(overall["metric"]))
    return [csv, means_csv, md, *figure]


def _datasets(spec: Mapping[str, Any], datasets: Sequence[str] | None) -> list[str]:
    """The table's datasets, or those of ``datasets`` (which must be the table's)."""
    table = [str(d) for d in spec["datasets"]]
    if datasets is None:
        return table
    unknown = [d for d in datasets if d not in table]
    if unknown:
        raise DataError(
            f"table {spec.get('name', '?')} has no dataset(s) {unknown}; it has {table}"
        )
    return [str(d) for d in datasets]


def _check_metric(runs: pd.DataFrame, metric: str) -> None:
    if metric not in runs:
        raise DataError(f"the runs table has no {metric!r} column; it has {list(runs.columns)}")


def _clean(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The runs with ``metric`` recorded, classes as text."""
    return runs[runs[metric].notna()].assign(cls=lambda f: f["cls"].astype(str))


def _class_values(runs: pd.DataFrame, dataset: str, variant: str | None, metric: str) -> pd.Series:
    """A variant's ``metric`` (%) per class (text ids) on a dataset, each the seeds' mean;
    empty where it did not run."""
    if variant is None:
        return pd.Series(dtype=np.float64)
    return class_auroc(_clean(runs, metric), dataset, variant, metric)


def _check_class_names(runs: pd.DataFrame, datasets: Sequence[str], classes: Sequence[str]) -> None:
    """Classes pair by id across datasets: the same id must name the same class."""
    if "class_name" not in runs:
        return
    named = runs[runs["dataset"].isin(datasets) & runs["class_name"].notna()]
    names = named.assign(cls=named["cls"].astype(str)).groupby("cls")["class_name"].unique()
    for cls in classes:
        if cls in names and len(names[cls]) > 1:
            raise DataError(
                f"class {cls} is {sorted(map(str, names[cls]))} on the datasets {list(datasets)}: "
                "a concordance pairs classes by id, so its datasets must hold the same images "
                "(choose them with datasets=...)"
            )


def _method_order(means: pd.DataFrame, metric: str) -> list[str]:
    """Entries by their mean over the datasets they ran on, best first."""
    overall = means.groupby("entry", sort=False)["mean_pct"].mean()
    return list(overall.sort_values(ascending=metric in LOWER_IS_BETTER, kind="stable").index)


def _percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The central :data:`CONFIDENCE` percentile interval of the finite ``values``."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.nan, math.nan
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _p_text(p: float) -> str:
    return "–" if pd.isna(p) else f"{p:.2g}"


def _natural(text: str) -> tuple[int, str]:
    """Class ids in numeric order, names after them."""
    return (int(text), "") if text.isdigit() else (10**9, text)
