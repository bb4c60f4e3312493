"""The plan: everything the workflow decides from its config, as pure functions of it.

No Snakemake import, so that it is unit-tested directly; ``workflow/rules/common.smk``
wraps it in one-line input functions. The pieces live beside it, one job each:
cross-reference checks (``references``), variants resolved to content-keyed settings
(``variants``), the runs each table and figure needs (``targets``), and each job's
typed spec (``steps``).

Runs are made in *batches*, one ``evaluate`` job each: every run of one class and bank.
A batch is named by its class and bank alone, and its runs by their settings' content
keys, so that re-saving the config with its keys in another order or adding a table
over existing variants changes no job, and a new variant reruns its classes' jobs,
which find every other run in the run cache (:mod:`cap.benchmark.cache`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cap.benchmark import layout
from cap.benchmark.planning.references import MODEL_FIGURES, check_references
from cap.benchmark.planning.targets import Run, Targets
from cap.benchmark.planning.variants import Setting, Variants
from cap.data import DATASETS as DATASET_REGISTRY


@dataclass(frozen=True, order=True)
class Batch:
    """Every run of one class and bank: one ``evaluate`` job."""

    dataset: str
    backbone: str
    cls: str
    bank: str  # "all", or the bank size N

    def path(self, pattern: str) -> str:
        """``pattern`` (a :mod:`cap.benchmark.layout` path) filled with this batch."""
        return pattern.format(
            dataset=self.dataset, backbone=self.backbone, cls=self.cls, bank=self.bank
        )


class Plan:
    """Everything the workflow decides from its config; raises on bad references.

    Parameters
    ----------
    config : mapping
        The workflow config, validated against ``workflow/schemas/config.schema.yaml``
        (defaults filled in).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        check_references(config)
        self.config = config
        self.datasets: Mapping[str, Any] = config["datasets"]
        self.variants = Variants(config)
        self.targets = Targets(config, self.variants)

    # ------------------------------------------------------------ datasets and classes

    def class_ids(self, dataset: str) -> list[str]:
        """The normal classes of ``dataset`` as wildcard values."""
        return [str(c) for c in self.datasets[dataset]["classes"]]

    def backbone_of(self, dataset: str) -> str:
        return self.datasets[dataset]["backbone"]

    def backbone_model(self, backbone: str) -> str:
        """The registry model behind a configured backbone name (``tflite``, ``resnet152``)."""
        return self.config["backbones"][backbone]["model"]

    def is_per_category(self, dataset: str) -> bool:
        """Whether each class is a category with its own train/test folders (MVTec AD)."""
        return DATASET_REGISTRY[self.datasets[dataset]["source"]].per_category

    def embedding_subset(self, dataset: str, cls: str) -> str:
        """Embeddings are shared by all classes, except per-category datasets (MVTec)."""
        return cls if self.is_per_category(dataset) else "all"

    def normal_class(self, dataset: str, cls: str) -> int | None:
        """A run's normal class id, or ``None`` where the whole training split is normal
        (per-category datasets)."""
        return None if self.is_per_category(dataset) else int(cls)

    def resource_path(self, name: str) -> str:
        """Where the ``fetch`` rule puts resource ``name``'s file."""
        return f"{layout.RESOURCE.format(resource=name)}/{self.config['resources'][name]['file']}"

    def setting_of(self, run: Run) -> Setting:
        return self.variants.of_key(run.dataset, run.setting)

    # ----------------------------------------------------------------------- runs

    @cached_property
    def all_runs(self) -> list[Run]:
        """Every run of ``snakemake all``: those the tables and figures need."""
        return sorted({run for target in self.targets.names() for run in self.targets.runs(target)})

    @cached_property
    def batches(self) -> list[Batch]:
        """One batch per class and bank that some run needs."""
        return sorted(self._runs_by_batch)

    @staticmethod
    def batch_of(run: Run) -> Batch:
        return Batch(run.dataset, run.backbone, run.cls, run.bank)

    def batch_runs(self, batch: Batch) -> list[Run]:
        return list(self._runs_by_batch.get(batch, ()))

    @cached_property
    def _runs_by_batch(self) -> dict[Batch, list[Run]]:
        """The runs of each batch, grouped once (the rules ask per job, at DAG build)."""
        grouped: dict[Batch, list[Run]] = {}
        for run in self.all_runs:
            grouped.setdefault(self.batch_of(run), []).append(run)
        return grouped

    def find_batch(self, wildcards: Mapping[str, str]) -> Batch:
        """The batch behind a job's dataset, backbone, cls and bank wildcards."""
        return Batch(
            wildcards["dataset"], wildcards["backbone"], wildcards["cls"], wildcards["bank"]
        )

    def batch_trains(self, batch: Batch) -> bool:
        """Whether a batch fits a trainable method (its job may then use the GPU)."""
        return any(self.setting_of(run).trainable for run in self.batch_runs(batch))

    def record_files(self, runs: Iterable[Run]) -> list[str]:
        """The batch record files that hold ``runs``."""
        return sorted({self.batch_of(run).path(layout.RECORDS) for run in runs})

    @cached_property
    def kept_runs(self) -> set[Run]:
        """Runs whose trained model is kept: the first seed of those a model figure draws, or
        every trainable run with ``keep_models``."""
        if self.config["keep_models"]:
            return {run for run in self.all_runs if self.setting_of(run).trainable}
        figures = self.config["figures"]
        drawn = [
            self.targets.figure_runs(kind, figure)
            for kind in MODEL_FIGURES
            for figure in figures.get(kind, [])
        ]
        return {runs[0] for runs in drawn if runs}

    @cached_property
    def monitored_runs(self) -> set[Run]:
        """Runs whose test scores are recorded after every epoch: those the score curves draw."""
        if "score_curves" not in self.config["figures"]:
            return set()
        return set(self.targets.runs("fig_score_curves"))

    def run_labels(self, runs: Iterable[Run] | None = None) -> dict[str, dict[str, str]]:
        """Dataset → setting key → the variant label its runs carry in tables."""
        labels: dict[str, dict[str, str]] = {}
        for run in self.all_runs if runs is None else runs:
            labels.setdefault(run.dataset, {})[run.setting] = self.variants.label(
                run.dataset, run.setting
            )
        return labels

    def k_max(self, dataset: str, bank: str = "all") -> int:
        """The largest K any run on ``dataset``'s bank ``bank`` needs: neighbours are searched
        once with it (1 where none reads neighbours)."""
        settings = [
            self.setting_of(run)
            for run in self.all_runs
            if run.dataset == dataset and run.bank == bank
        ]
        return max((s.settings["k"] for s in settings if "k" in s.settings), default=1)

    # ------------------------------------------------------------------- outputs

    def final_outputs(self) -> list[str]:
        """What ``snakemake all`` builds: tables, figures, the runs and claims tables, the
        leaderboard where there is one, and the report."""
        tables = [
            path for table in self.targets.tables for path in self.targets.table_outputs(table)
        ]
        return [
            *tables,
            *self.targets.all_figures(),
            layout.RUNS_TABLE,
            layout.CLAIMS,
            *self.leaderboard_outputs(),
            layout.REPORT,
        ]

    def leaderboard_outputs(self) -> list[str]:
        """The leaderboard's files, where the config ranks a table's methods."""
        return list(layout.LEADERBOARD.values()) if self.config["report"]["leaderboard"] else []

    def embedding_files(self) -> list[str]:
        """The embedding files of this config's runs."""
        return sorted(
            {
                layout.EMBEDDINGS.format(
                    dataset=run.dataset,
                    backbone=run.backbone,
                    subset=self.embedding_subset(run.dataset, run.cls),
                    split=split,
                )
                for run in self.all_runs
                for split in ("train", "test")
            }
        )

    def owns(self, rule: str, wildcards: Mapping[str, str]) -> bool:
        """Whether a job file (log, benchmark) under ``results/`` is one of this config's
        jobs: its dataset, backbone, class, table or resource is this config's."""
        datasets = self.datasets
        if "dataset" in wildcards:
            dataset = wildcards["dataset"]
            if dataset not in datasets or wildcards.get("backbone") != self.backbone_of(dataset):
                return False
            if "cls" in wildcards and wildcards["cls"] not in self.class_ids(dataset):
                return False
        if "table" in wildcards and wildcards["table"] not in self.targets.tables:
            return False
        return "resource" not in wildcards or wildcards["resource"] in self.config["resources"]
