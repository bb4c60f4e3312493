"""What every `cap` step shares: the :class:`Step` it declares, and :class:`Steps`, the
helpers that turn a plan's decisions into its jobs' specs and inputs."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cap.data import SPLITS
from cap.evaluation.jobs import RunSpec, TaskSpec
from cap.workflow import layout
from cap.workflow.rule import Rule
from cap.workflow.targets import Batch, Run

if TYPE_CHECKING:
    from cap.workflow.plan import Plan

#: A step's planned spec (or the files its job reads) of the job behind some wildcards.
Planned = Callable[["Steps", Mapping[str, str]], Any]


@dataclass(frozen=True)
class Step:
    """A `cap` step: a rule whose every job runs ``cap <name> SPEC`` on one spec file.

    Declared once, in its own module of this package; the table of rules, the spec
    writers, the ``cap`` command's sub-command and the rule's input function all come
    from it."""

    rule: Rule  # its name, jobs, placement and resources
    stage: int  # its place in the pipeline (the order of the rules and of ``cap --help``)
    spec: type  # the spec its command reads (:mod:`cap.evaluation.jobs`)
    summary: str  # one line for ``cap --help``
    build: Planned  # the spec the plan writes for the job behind some wildcards
    inputs: Planned  # the files that job reads besides its spec (a dict, for unpack)
    run: Callable[[Any, argparse.Namespace], None]  # runs one spec (and the options)
    options: Callable[[argparse.ArgumentParser], None] | None = None  # beside SPEC

    @property
    def name(self) -> str:
        return self.rule.name


class Steps:
    """The specs and inputs of a :class:`Plan`'s `cap` jobs, and what several steps
    build them from (a class's task, its files, a run's spec)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.config = plan.config

    def spec(self, step: str, wildcards: Mapping[str, str]) -> Any:
        """The planned spec of the ``step`` job behind ``wildcards``."""
        from cap.workflow.steps import STEP

        return STEP[step].build(self, wildcards)

    def inputs(self, step: str, wildcards: Mapping[str, str]) -> dict[str, Any]:
        """What the ``step`` job behind ``wildcards`` reads besides its spec."""
        from cap.workflow.steps import STEP

        return dict(STEP[step].inputs(self, wildcards))

    # ---------------------------------------------------------- a class's runs

    def task(self, batch: Batch) -> TaskSpec:
        """The features of one class's runs: its bank (all, or the first N) and the test split."""
        files = self.split_inputs(batch.dataset, batch.backbone, batch.cls)
        return TaskSpec(
            train_embeddings=files["train_emb"],
            test_embeddings=files["test_emb"],
            normal_class=self.plan.normal_class(batch.dataset, batch.cls),
            backbone=self.plan.backbone_model(batch.backbone),
            bank_size=None if batch.bank == "all" else int(batch.bank),
        )

    def split_inputs(self, dataset: str, backbone: str, cls: str) -> dict[str, str]:
        """Train and test embeddings of the class's dataset split files."""
        subset = self.plan.embedding_subset(dataset, cls)
        return {
            f"{split}_emb": layout.EMBEDDINGS.format(
                dataset=dataset, backbone=backbone, subset=subset, split=split
            )
            for split in SPLITS
        }

    def class_inputs(self, batch: Batch) -> dict[str, str]:
        """Embeddings and neighbours of the batch's runs (one class, one bank)."""
        files = self.split_inputs(batch.dataset, batch.backbone, batch.cls)
        return {**files, "neighbors": batch.path(layout.NEIGHBORS)}

    def run_spec(self, run: Run) -> RunSpec:
        """What ``cap evaluate`` / ``cap train`` need to make one run."""
        setting = self.plan.setting_of(run)
        return RunSpec(
            setting=run.setting,
            method=setting.method,
            settings=dict(setting.settings),
            seed=run.seed,
            monitor=run in self.plan.monitored_runs,
            model=run.path(layout.MODEL) if run in self.plan.kept_runs else None,
        )

    def images(self, dataset: str, cls: str) -> dict[str, str | None]:
        """How a figure reloads a class's images (``cap.reporting.figure_examples.load_images``)."""
        entry = self.plan.datasets[dataset]
        return {
            "source": entry.source,
            "root": self.plan.resource_path(entry.resource),
            "category": cls if self.plan.is_per_category(dataset) else None,
        }

    def cache(self) -> str | None:
        """The run cache of the jobs that make runs (None: the config turned it off)."""
        return layout.RUN_CACHE if self.config.cache else None
