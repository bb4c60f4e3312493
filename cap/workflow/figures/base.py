"""What every figure kind declares: :class:`FigureKind`."""

from __future__ import annotations

import importlib
import string
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cap.workflow.layout import MODEL, RESULTS
from cap.workflow.rule import Rule

if TYPE_CHECKING:
    from cap.workflow.config import Figure
    from cap.workflow.steps import Steps

#: What a figure job reads (its files, or its parameters) for one configured figure.
Planned = Callable[["Steps", "Figure"], Mapping[str, Any]]
#: Draws one figure from its job's files and parameters to ``<stem>.png`` and ``.pdf``.
Draw = Callable[[Mapping[str, Any], Mapping[str, Any], Path], None]

#: What a kind's variants must leave for it to draw: a kept model (the first seed's), a
#: training history, anomaly maps of a dataset with defect masks, or scores only.
NEEDS: tuple[str, ...] = ("model", "history", "maps", "scores")


@dataclass(frozen=True)
class FigureKind:
    """A kind of figure that a config's ``figures.<name>`` entries draw, declared once in
    its own module of this package (with its caption, ``workflow/report/<name>.rst``, and
    its entries' schema, ``figures.<name>``): its rule ``figure_<name>``, target
    ``fig_<name>``, files, the runs it draws and how."""

    name: str  # the config's figures.<name>, the rule figure_<name>, the target fig_<name>
    job: str  # wildcards naming one figure: its files are results/figures/<name>/<job>.*
    needs: str  # what its variants must leave (one of NEEDS)
    inputs: Planned  # the files its job reads
    params: Planned  # what its drawing reads besides the files (plain data)
    draw: str  # "<cap module>:<function>", a Draw: imported in the figure's job only
    local: bool = False  # a quick job: run where Snakemake runs

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"figure kind {self.name}: needs is one of {NEEDS}")

    @property
    def rule(self) -> Rule:
        return Rule(f"figure_{self.name}", self.job, local=self.local)

    @property
    def path(self) -> str:
        """The stem of each figure's files (``.png`` for the report, ``.pdf`` for papers)."""
        return f"{RESULTS}/figures/{self.name}/{self.job}"

    def drawing(self) -> Draw:
        """The function that draws this kind's figures (importing it, with matplotlib:
        planning never does)."""
        module, _, function = self.draw.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def wildcards(self) -> tuple[str, ...]:
        """The wildcards of its job, in the order of its path."""
        return tuple(field for _, field, _, _ in string.Formatter().parse(self.job) if field)


# What several kinds read: a trained run's files, or the records of the runs drawn.


def model_inputs(steps: Steps, figure: Figure, kind: str) -> dict[str, Any]:
    """The model, embeddings and neighbours of the run a model figure draws (its first seed)."""
    run = steps.plan.targets.figure_runs(kind, figure)[0]
    return {**steps.class_inputs(steps.plan.batch_of(run)), "model": run.path(MODEL)}


def model_params(steps: Steps, figure: Figure, kind: str) -> dict[str, Any]:
    """How a model figure reloads its run's task and images, and the figure's entry."""
    run = steps.plan.targets.figure_runs(kind, figure)[0]
    return {
        "dataset": steps.images(run.dataset, run.cls),
        "task": asdict(steps.task(steps.plan.batch_of(run))),
        "figure": asdict(figure),
    }


def records_inputs(steps: Steps, figure: Figure, kind: str) -> dict[str, Any]:
    """The records of the runs a curve figure draws."""
    return {"records": steps.plan.record_files(steps.plan.targets.figure_runs(kind, figure))}


def curves_params(steps: Steps, figure: Figure) -> dict[str, Any]:
    """Each curve as the figure reads it from the run records: its label, the settings of
    its variants and their seeds; and the figure's entry."""
    variants = steps.plan.variants
    curves = []
    for curve in figure.curves:
        settings = [variants.setting(figure.dataset, name).key for name in curve.variants]
        seeds = variants.seeds_of(figure.dataset, settings[0])
        curves.append({"label": curve.label, "settings": settings, "seeds": seeds})
    return {"curves": curves, "figure": asdict(figure)}
