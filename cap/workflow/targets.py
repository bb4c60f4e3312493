"""What each target reads: the runs every table and figure needs, and their files.

A *target* is a table (by its name) or a figure kind (``fig_<kind>``); ``snakemake
<target>`` builds it alone. A *run* is one (dataset, backbone, class, bank, setting,
seed); its setting is a content key (:mod:`cap.workflow.variants`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cap.workflow import layout
from cap.workflow.config import ClassId, Config, Figure, Table
from cap.workflow.figures import FIGURE_FORMATS, FIGURE_KINDS
from cap.workflow.references import ConfigReferenceError
from cap.workflow.variants import Variants


@dataclass(frozen=True, order=True)
class Run:
    """One fit-and-score of a setting on one normal class."""

    dataset: str
    backbone: str
    cls: str  # class id, or MVTec category
    bank: str  # "all", or the bank size N
    setting: str  # the setting's content key
    seed: int

    def path(self, pattern: str) -> str:
        """``pattern`` (a :mod:`cap.workflow.layout` path) filled with this run."""
        return pattern.format(**asdict(self))

    def wildcards(self) -> dict[str, str]:
        """This run as the wildcards of its jobs (``train``)."""
        return {key: str(value) for key, value in asdict(self).items()}


@dataclass(frozen=True, order=True)
class Batch:
    """Every run of one class and bank: one ``evaluate`` job."""

    dataset: str
    backbone: str
    cls: str
    bank: str  # "all", or the bank size N

    def path(self, pattern: str) -> str:
        """``pattern`` (a :mod:`cap.workflow.layout` path) filled with this batch."""
        return pattern.format(**self.wildcards())

    def wildcards(self) -> dict[str, str]:
        """This batch as the wildcards of its jobs (``neighbors``, ``evaluate``)."""
        return asdict(self)


class Targets:
    """The config's tables and figures, and the runs each reads."""

    def __init__(self, config: Config, variants: Variants) -> None:
        self.config = config
        self.variants = variants
        self.tables: Mapping[str, Table] = config.tables
        self.figures: Mapping[str, tuple[Figure, ...]] = config.figures
        # What the config's ``only`` leaves runs to: a table or figure without its runs is
        # no target, and a figure draws the methods it keeps.
        self.tables = {name: table for name, table in self.tables.items() if self.table_runs(name)}
        narrowed = {
            kind: [self._narrowed(figure) for figure in figures]
            for kind, figures in config.figures.items()
        }
        self.figures = {
            kind: tuple(figure for figure in figures if self.figure_runs(kind, figure))
            for kind, figures in narrowed.items()
        }

    def names(self) -> list[str]:
        """The named targets: one per table, one per figure kind (``fig_<kind>``)."""
        return [*self.tables, *(f"fig_{kind}" for kind in self.figures)]

    def runs(self, target: str) -> list[Run]:
        """The runs ``target`` reads, in a stable order."""
        if target in self.tables:
            return self.table_runs(target)
        kind = target.removeprefix("fig_")
        return sorted(
            {run for figure in self.figures[kind] for run in self.figure_runs(kind, figure)}
        )

    def variant_runs(
        self, dataset: str, variant: str, classes: Iterable[ClassId] | None = None
    ) -> list[Run]:
        """The runs of ``variant`` on ``dataset``: every class (or ``classes``) and seed;
        none outside the config's ``only`` selection."""
        setting = self.variants.setting(dataset, variant)
        if not self.config.only.keeps(dataset, setting.method):
            return []
        entry = self.config.datasets[dataset]
        return [
            Run(dataset, entry.backbone, str(cls), setting.bank, setting.key, seed)
            for cls in (entry.classes if classes is None else classes)
            for seed in self.variants.seeds_of(dataset, setting.key)
        ]

    def keeps(self, dataset: str, variant: str) -> bool:
        """Whether the config's ``only`` keeps the runs of ``variant`` on ``dataset``."""
        return self.config.only.keeps(dataset, self.variants.setting(dataset, variant).method)

    def _narrowed(self, figure: Figure) -> Figure:
        """``figure`` drawing only the variants (and curves) whose runs ``only`` keeps."""
        kept = functools.partial(self.keeps, figure.dataset)
        return dataclasses.replace(
            figure,
            variants=tuple(filter(kept, figure.variants)),
            curves=tuple(curve for curve in figure.curves if all(map(kept, curve.variants))),
        )

    # ------------------------------------------------------------------- tables

    def table_runs(self, table: str) -> list[Run]:
        """Every seed of the table's variants on its datasets' classes (or the ``classes``
        it names for a dataset); an entry runs on the ``datasets`` it names, if any."""
        spec = self.tables[table]
        return sorted(
            {
                run
                for entry in spec.entries
                for dataset in spec.entry_datasets(entry)
                for run in self.variant_runs(dataset, entry.variant, spec.classes.get(dataset))
            }
        )

    def table_spec(self, table: str) -> dict[str, Any]:
        """The table as :func:`cap.reporting.tables.build_table` reads it: each entry's
        variant label on each dataset (the runs table's ``variant`` column)."""
        spec = self.tables[table]
        return {
            "name": table,
            "title": spec.title,
            "layout": spec.layout,
            "datasets": list(spec.datasets),
            "paper_key": spec.paper,
            "reported_rows": spec.reported_rows,
            "metric": spec.metric,
            "entries": [
                {
                    "label": entry.label,
                    "variants": {
                        d: self.label(d, entry.variant) for d in spec.entry_datasets(entry)
                    },
                }
                for entry in spec.entries
            ],
        }

    def label(self, dataset: str, variant: str) -> str:
        """The label of the runs ``variant`` shares on ``dataset`` (the first variant, in
        config order, that resolves to the same setting)."""
        return self.variants.label(dataset, self.variants.setting(dataset, variant).key)

    def table_outputs(self, table: str) -> list[str]:
        return list(layout.table_files(table).values())

    def outputs(self, target: str) -> list[str]:
        """The files a named target builds."""
        if target in self.tables:
            return self.table_outputs(target)
        return self.figure_paths(target.removeprefix("fig_"))

    # ------------------------------------------------------------------ figures

    def figure_runs(self, kind: str, figure: Figure) -> list[Run]:
        """Every seed of the variants a figure draws on its classes (one, or the panels'):
        a model figure shows the first seed's model, the curves the mean over the seeds."""
        variants = [figure.variant] if figure.variant is not None else []
        variants += [*figure.variants, *(v for curve in figure.curves for v in curve.variants)]
        classes = [figure.cls] if figure.cls is not None else figure.classes
        return [run for v in variants for run in self.variant_runs(figure.dataset, v, classes)]

    def figure_wildcards(self, kind: str, figure: Figure) -> dict[str, str]:
        """The figure job's wildcards, as its kind's path names them: its dataset and
        backbone, and its class, variant label or name."""
        values = {
            "dataset": figure.dataset,
            "backbone": self.config.datasets[figure.dataset].backbone,
            "cls": str(figure.cls),
            "name": figure.name,
        }
        if figure.variant is not None:
            values["variant"] = self.label(figure.dataset, figure.variant)
        return {field: values[field] for field in FIGURE_KINDS[kind].wildcards}

    def find_figure(self, kind: str, wildcards: Mapping[str, str]) -> Figure:
        """The ``figures.<kind>`` entry a figure job's wildcards draw."""
        for figure in self.figures[kind]:
            if self.figure_wildcards(kind, figure) == dict(wildcards):
                return figure
        raise ConfigReferenceError(f"no figures.{kind} entry for {dict(wildcards)}")

    def figure_paths(self, kind: str) -> list[str]:
        """PNG and PDF of every configured figure of ``kind`` that has runs to draw."""
        path = FIGURE_KINDS[kind].path
        return [
            f"{path.format(**self.figure_wildcards(kind, figure))}.{extension}"
            for figure in self.figures[kind]
            for extension in FIGURE_FORMATS
        ]

    def all_figures(self) -> list[str]:
        return [path for kind in self.figures for path in self.figure_paths(kind)]
