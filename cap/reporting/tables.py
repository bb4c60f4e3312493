"""The paper's tables from per-class AUROC records: CSV, Markdown and LaTeX (booktabs).

A table *spec* (resolved by the workflow) names the table's entries (rows of
Table 1/2, columns of Table 3/4) and, per dataset, the variant whose runs fill
each cell::

    {"name": "table3", "title": "...", "layout": "variants_as_columns",
     "datasets": ["cifar10", "mvtec"], "paper_key": "table3", "reported_rows": False,
     "entries": [{"label": "1", "variants": {"cifar10": "k1", "mvtec": "k1"}}, ...]}

A cell is the mean over the dataset's classes of the table's metric (``spec["metric"]``:
AUROC by default, or AUPR, or FPR at 95% TPR; :mod:`cap.metrics.image`) of that
variant; with several seeds the class mean is taken per seed, then reported as mean ±
std (ddof=1) across seeds. The machine-readable CSV is tidy — one row per (entry,
dataset), the metric in percent, with the paper's value beside ours — while Markdown
and LaTeX show the paper's layout with the best computed value per dataset in bold (the
lowest for a lower-is-better metric). The per-class CSV keeps every run: one row per
(entry, dataset, class, seed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cap.metrics.image import LOWER_IS_BETTER, METRICS
from cap.metrics.localization import PIXEL_METRICS
from cap.reporting.paper import paper_rows, reported_rows
from cap.utils.errors import ConfigError, DataError
from cap.utils.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

LAYOUTS: tuple[str, ...] = ("variants_as_rows", "variants_as_columns")
#: Columns a run summary must have (``cap.evaluation.records.summarize_records``), beside
#: the table's metric.
SUMMARY_COLUMNS: tuple[str, ...] = ("dataset", "backbone", "cls", "variant", "seed")
#: How each metric is named in a table's legend.
METRIC_NAMES: dict[str, str] = {
    "auroc": "AUROC",
    "aupr": "AUPR (anomalies positive)",
    "fpr95": "FPR at 95% TPR",
    "pixel_auroc": "pixel AUROC",
    "aupro": "AUPRO (to FPR 0.3)",
}
#: What a table's cells may show: a run's image metrics, or its pixel metrics (datasets
#: with defect masks, methods that localize).
TABLE_METRICS: tuple[str, ...] = (*METRICS, *PIXEL_METRICS)
DEFAULT_METRIC = "auroc"
#: Columns of the tidy table CSV: one row per (entry, dataset).
CELL_COLUMNS: tuple[str, ...] = (
    "table",
    "entry",
    "dataset",
    "kind",
    "variant",
    "backbone",
    "metric",
    "value_pct",
    "value_pct_std",
    "n_seeds",
    "n_classes",
    "paper_pct",
    "best",
)
#: Columns of the per-class CSV: one row per (entry, dataset, class, seed).
PER_CLASS_COLUMNS: tuple[str, ...] = (
    "table", "entry", "dataset", "variant", "backbone", "cls", "class_name", "seed", "metric",
    "value_pct",
)  # fmt: skip
#: Columns read back as text, so that labels such as "1" or "0.1" stay labels.
TEXT_COLUMNS: tuple[str, ...] = (
    "table", "entry", "dataset", "kind", "variant", "backbone", "cls", "metric",
)  # fmt: skip
#: Display names of the paper's datasets; others are shown as they are named.
DATASET_NAMES: dict[str, str] = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "fmnist": "FMNIST",
    "mvtec": "MVTec AD",
}
MISSING = "–"
REPORTED_SUFFIX = " (reported)"

#: A table's files: ``<prefix><suffix>`` for each kind.
TABLE_SUFFIXES: dict[str, str] = {
    "csv": ".csv",
    "md": ".md",
    "tex": ".tex",
    "per_class": "_per_class.csv",
}


@dataclass(frozen=True)
class Table:
    """One rendered paper table: its cells and their per-class breakdown."""

    name: str  # file stem and table id, e.g. "table3"
    title: str  # caption
    layout: str  # one of LAYOUTS
    cells: pd.DataFrame  # CELL_COLUMNS, entries in display order
    per_class: pd.DataFrame  # PER_CLASS_COLUMNS


def build_table(
    summary: pd.DataFrame, spec: Mapping[str, Any], paper: Mapping[str, Any] | None
) -> Table:
    """Aggregate per-run AUROCs into the cells of the table ``spec`` describes.

    Parameters
    ----------
    summary : DataFrame
        One row per run with :data:`SUMMARY_COLUMNS` and the table's metric (a
        fraction); ``class_name`` is used when present.
    spec : mapping
        The resolved table spec (see the module docstring).
    paper : mapping or None
        From :func:`cap.reporting.paper.load_paper_results`; adds the paper's value to each
        cell and, with ``spec["reported_rows"]``, the paper's rows marked
        "(reported)".
    """
    _check_spec(spec)
    metric = spec.get("metric", DEFAULT_METRIC)
    missing = [column for column in (*SUMMARY_COLUMNS, metric) if column not in summary]
    if missing:
        raise DataError(f"run summary lacks column(s) {missing}; it has {list(summary.columns)}")
    name, datasets = str(spec["name"]), list(spec["datasets"])
    paper_values = paper_rows(paper, spec["paper_key"]) if paper and spec.get("paper_key") else {}
    labels = [str(entry["label"]) for entry in spec["entries"]]
    unmatched = [label for label in labels if paper_values and label not in paper_values]
    if unmatched:
        log.warning(
            "%s: entries %s have no row in the paper's %s", name, unmatched, spec["paper_key"]
        )
    cells, per_class = [], []
    for entry in spec["entries"]:
        label = str(entry["label"])
        for dataset in datasets:
            variant = entry["variants"].get(dataset)
            runs = (
                summary.iloc[0:0]
                if variant is None
                else summary[(summary["dataset"] == dataset) & (summary["variant"] == variant)]
            )
            key = {"table": name, "entry": label, "dataset": dataset, "variant": variant}
            cell = _aggregate_cell(runs, metric, f"{name} {label!r} on {dataset}")
            paper_value = paper_values.get(label, {}).get(dataset)
            cells.append(
                {**key, "kind": "computed", "metric": metric, **cell, "paper_pct": paper_value}
            )
            per_class.extend(
                {**key, "metric": metric, **row} for row in _per_class_rows(runs, metric)
            )
    if spec.get("reported_rows") and paper:
        for label, values in reported_rows(paper, spec["paper_key"]).items():
            for dataset in datasets:
                cells.append(
                    {
                        "table": name,
                        "entry": label + REPORTED_SUFFIX,
                        "dataset": dataset,
                        "kind": "reported",
                        "metric": metric,
                        "paper_pct": values.get(dataset),
                    }
                )
    frame = pd.DataFrame.from_records(cells).reindex(columns=list(CELL_COLUMNS))
    frame = frame.astype(
        {
            "value_pct": float,
            "value_pct_std": float,
            "paper_pct": float,
            "n_seeds": "Int64",
            "n_classes": "Int64",
        }
    )
    frame["best"] = _best_cells(frame, lower_is_better=metric in LOWER_IS_BETTER)
    return Table(
        name=name,
        title=str(spec["title"]),
        layout=str(spec["layout"]),
        cells=frame,
        per_class=pd.DataFrame.from_records(per_class).reindex(columns=list(PER_CLASS_COLUMNS)),
    )


def write_table(table: Table, out_prefix: str | os.PathLike[str]) -> list[Path]:
    """Write the table's files, ``{prefix}`` plus each of :data:`TABLE_SUFFIXES`, atomically."""
    paths = {kind: Path(f"{out_prefix}{suffix}") for kind, suffix in TABLE_SUFFIXES.items()}
    for frame, path in ((table.cells, paths["csv"]), (table.per_class, paths["per_class"])):
        with atomic_path(path) as temporary:
            frame.round(4).to_csv(temporary, index=False)
    write_text_atomic(paths["md"], to_markdown(table))
    write_text_atomic(paths["tex"], to_latex(table))
    return list(paths.values())


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table CSV written by :func:`write_table`, keeping labels as text."""
    frame = pd.read_csv(path, dtype={column: str for column in TEXT_COLUMNS})
    missing = [column for column in CELL_COLUMNS if column not in frame]
    if missing:
        raise DataError(f"{path} is not a table CSV: it lacks column(s) {missing}")
    frame["best"] = frame["best"].astype(bool)
    return frame


def to_markdown(table: Table) -> str:
    """The table in the paper's layout as a Markdown pipe table, with a caption and legend."""
    grid = display_grid(table, bold=lambda text: f"**{text}**", plus_minus=" ± ")
    body = grid.to_markdown(colalign=("left",) + ("right",) * grid.shape[1], disable_numparse=True)
    return f"**{table.title}**\n\n{body}\n\n{_legend(table)}\n"


def to_latex(table: Table) -> str:
    """The table in the paper's layout as a booktabs ``table`` environment."""
    grid = display_grid(
        table, bold=lambda text: rf"\textbf{{{text}}}", plus_minus=r" $\pm$ ", escape=_latex_escape
    )
    header = [_latex_escape(str(grid.index.name))] + [_latex_escape(str(c)) for c in grid.columns]
    reported = {_latex_escape(label) for label in _reported_labels(table)}
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_latex_escape(table.title)}}}",
        rf"\label{{tab:{table.name}}}",
        rf"\begin{{tabular}}{{l{'r' * grid.shape[1]}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
    ]
    previous_reported = False
    for label, row in grid.iterrows():
        is_reported = label in reported
        if is_reported and not previous_reported and lines[-1] != r"\midrule":
            lines.append(r"\midrule")
        previous_reported = is_reported
        lines.append(" & ".join([str(label), *row.tolist()]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines).replace(MISSING, "--") + "\n"


def display_grid(
    table: Table,
    *,
    bold: Callable[[str], str],
    plus_minus: str,
    escape: Callable[[str], str] = str,
) -> pd.DataFrame:
    """Cells as text in the paper's layout: entries × datasets, or datasets × entries."""
    cells = table.cells.assign(
        text=[_cell_text(row, bold, plus_minus) for row in table.cells.itertuples()],
        entry=table.cells["entry"].map(escape),
        dataset=table.cells["dataset"].map(lambda d: escape(DATASET_NAMES.get(d, d))),
    )
    entries = list(dict.fromkeys(cells["entry"]))
    datasets = list(dict.fromkeys(cells["dataset"]))
    grid = cells.pivot(index="entry", columns="dataset", values="text").loc[entries, datasets]
    grid.index.name, grid.columns.name = "Method", None
    if table.layout == "variants_as_columns":
        grid = grid.T
        grid.index.name, grid.columns.name = "Dataset", None
    return grid


def _check_spec(spec: Mapping[str, Any]) -> None:
    required = ("name", "title", "layout", "datasets", "entries")
    missing = [key for key in required if key not in spec]
    if missing:
        raise ConfigError(f"table spec lacks key(s) {missing}; it has {sorted(spec)}")
    if spec["layout"] not in LAYOUTS:
        raise ConfigError(
            f"table {spec['name']}: unknown layout {spec['layout']!r}; valid: {list(LAYOUTS)}"
        )
    if not spec["datasets"] or not spec["entries"]:
        raise ConfigError(f"table {spec['name']}: needs at least one dataset and one entry")
    labels = [str(entry.get("label")) for entry in spec["entries"]]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"table {spec['name']}: entry labels must be unique, got {labels}")
    for entry in spec["entries"]:
        if not isinstance(entry.get("variants"), Mapping):
            raise ConfigError(
                f"table {spec['name']}: entry {entry.get('label')!r} needs a "
                "'variants' mapping of dataset → variant"
            )
    if spec.get("reported_rows") and not spec.get("paper_key"):
        raise ConfigError(f"table {spec['name']}: reported_rows needs a paper_key")
    if spec.get("metric", DEFAULT_METRIC) not in TABLE_METRICS:
        raise ConfigError(
            f"table {spec['name']}: unknown metric {spec['metric']!r}; valid: {list(TABLE_METRICS)}"
        )


def _aggregate_cell(runs: pd.DataFrame, metric: str, where: str) -> dict[str, object]:
    """Class-mean ``metric`` (%) per seed, then mean and std across seeds."""
    if runs.empty:
        return {"n_seeds": 0, "n_classes": 0}
    backbones = sorted(runs["backbone"].astype(str).unique())
    if len(backbones) > 1:
        raise DataError(f"{where}: runs from several backbones {backbones}; select one per table")
    classes_per_seed = runs.groupby("seed", dropna=False)["cls"].nunique()
    if classes_per_seed.nunique() > 1:
        log.warning(
            "%s: seeds cover different numbers of classes: %s", where, classes_per_seed.to_dict()
        )
    per_seed = runs.groupby("seed", dropna=False)[metric].mean() * 100.0  # (n_seeds,)
    return {
        "backbone": backbones[0],
        "value_pct": float(per_seed.mean()),
        "value_pct_std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else np.nan,
        "n_seeds": len(per_seed),
        "n_classes": int(runs["cls"].nunique()),
    }


def _per_class_rows(runs: pd.DataFrame, metric: str) -> list[dict[str, object]]:
    """Every run of one cell: its class, seed and ``metric`` (%)."""
    columns = ["backbone", "cls", "class_name", "seed", metric]
    frame = runs.reindex(columns=columns).assign(
        cls=runs["cls"].astype(str), value_pct=runs[metric] * 100.0
    )
    return frame.drop(columns=metric).to_dict("records")


def _best_cells(cells: pd.DataFrame, *, lower_is_better: bool = False) -> pd.Series:
    """True where a computed cell has the best value of its dataset, at display precision."""
    shown = cells["value_pct"].where(cells["kind"] == "computed").astype(float).round(1)
    best = shown.groupby(cells["dataset"]).transform("min" if lower_is_better else "max")
    return (shown == best) & shown.notna()


def _cell_text(row: Any, bold: Callable[[str], str], plus_minus: str) -> str:
    value = row.paper_pct if row.kind == "reported" else row.value_pct
    if pd.isna(value):
        return MISSING
    text = f"{value:.1f}"
    if row.kind == "computed" and not pd.isna(row.value_pct_std):
        text += f"{plus_minus}{row.value_pct_std:.1f}"
    return bold(text) if row.best else text


def _reported_labels(table: Table) -> list[str]:
    return table.cells.loc[table.cells["kind"] == "reported", "entry"].unique().tolist()


def _legend(table: Table) -> str:
    """How to read the cells: over how many classes and seeds, and what bold means."""
    computed = table.cells[(table.cells["kind"] == "computed") & (table.cells["n_classes"] > 0)]
    classes = computed.groupby("dataset", sort=False)["n_classes"].max()
    counts = ", ".join(f"{DATASET_NAMES.get(d, d)} {n}" for d, n in classes.items())
    seeds = sorted(set(computed["n_seeds"].dropna().astype(int)))
    per_cell = " or ".join(map(str, seeds))
    metric = computed["metric"].iloc[0] if not computed.empty else DEFAULT_METRIC
    lower = ", lower is better" if metric in LOWER_IS_BETTER else ""
    notes = [
        f"{METRIC_NAMES[metric]} (%{lower}), mean over the dataset's normal classes ({counts}).",
        f"± std over seeds where a variant ran several (seeds per cell: {per_cell}).",
        f"Bold: the {'lowest' if lower else 'highest'} mean per dataset at one decimal, not a "
        "significance test (the report's claims give intervals).",
        f"{MISSING}: not run.",
    ]
    if max(seeds, default=1) <= 1:
        notes.pop(1)
    if _reported_labels(table):
        notes.append("(reported): copied from the paper.")
    return " ".join(notes)


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "λ": r"$\lambda$",
    "±": r"$\pm$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(character, character) for character in text)
