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
which find every other run in the run cache (:mod:`cap.evaluation.cache`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from cap.data import DATASETS as DATASET_REGISTRY
from cap.evaluation.jobs import KEY_PATTERN, ClaimsJob, ReportJob
from cap.utils.errors import ConfigError
from cap.utils.resources import first_existing, tree_version
from cap.workflow import layout, registry
from cap.workflow.config import Config
from cap.workflow.config import Dataset as DatasetConfig
from cap.workflow.figures import FIGURE_KINDS
from cap.workflow.names import check_names
from cap.workflow.references import check_references
from cap.workflow.targets import Batch, Run, Targets
from cap.workflow.variants import Setting, Variants


class Plan:
    """Everything the workflow decides from its config; raises on unsafe names and bad
    references.

    Parameters
    ----------
    config : mapping or Config
        The workflow config, validated against ``workflow/schemas/config.schema.yaml``
        (defaults filled in); typed here (:class:`Config`) unless it already is.
    """

    def __init__(self, config: Mapping[str, Any] | Config) -> None:
        config = config if isinstance(config, Config) else Config.from_dict(config)
        check_names(config)
        check_references(config)
        self.config = config
        self.datasets: Mapping[str, DatasetConfig] = config.datasets
        self.variants = Variants(config)
        self.targets = Targets(config, self.variants)
        self._resource_versions: dict[str, str] = {}
        self.check_banks()

    # ------------------------------------------------------------ datasets and classes

    def class_ids(self, dataset: str) -> list[str]:
        """The normal classes of ``dataset`` as wildcard values."""
        return [str(c) for c in self.datasets[dataset].classes]

    def backbone_of(self, dataset: str) -> str:
        return self.datasets[dataset].backbone

    def backbone_model(self, backbone: str) -> str:
        """The registry model behind a configured backbone name (``tflite``, ``resnet152``)."""
        return self.config.backbones[backbone].model

    def is_per_category(self, dataset: str) -> bool:
        """Whether each class is a category with its own train/test folders (MVTec AD)."""
        return DATASET_REGISTRY[self.datasets[dataset].source].per_category

    def localizes(self, dataset: str) -> bool:
        """Whether ``dataset``'s test images have defect masks: its runs that score
        positions get anomaly maps and pixel metrics (its jobs are ``localize``'s)."""
        return DATASET_REGISTRY[self.datasets[dataset].source].has_masks

    def reads_patches(self, dataset: str) -> bool:
        """Whether a run on ``dataset`` reads patch layers: its embeddings then keep them."""
        return any(
            self.setting_of(run).reads_patches for run in self.all_runs if run.dataset == dataset
        )

    def embedding_subset(self, dataset: str, cls: str) -> str:
        """Embeddings are shared by all classes, except per-category datasets (MVTec)."""
        return cls if self.is_per_category(dataset) else "all"

    def normal_class(self, dataset: str, cls: str) -> int | None:
        """A run's normal class id, or ``None`` where the whole training split is normal
        (per-category datasets)."""
        return None if self.is_per_category(dataset) else int(cls)

    def resource_path(self, name: str) -> str:
        """Where the ``fetch`` rule puts resource ``name``'s file."""
        return f"{layout.RESOURCE.format(resource=name)}/{self.config.resources[name].file}"

    def inputs_version(self, *resources: str | None) -> str:
        """The version of what an embedding job reads (its images and weights): a digest of
        each resource's :meth:`resource_version`, so that a change to either re-embeds."""
        versions = [self.resource_version(name) for name in resources if name is not None]
        return hashlib.sha256("\n".join(versions).encode()).hexdigest()

    def resource_version(self, name: str) -> str:
        """What resource ``name`` holds now, as its embedding jobs record it (a changed
        version re-embeds): the file names, sizes and times of the local copy it links
        (or of a copy put by hand under ``resources/``); a download is its source. Read
        once per plan."""
        if name not in self._resource_versions:
            self._resource_versions[name] = self._read_resource_version(name)
        return self._resource_versions[name]

    def _read_resource_version(self, name: str) -> str:
        entry = self.config.resources[name]
        local = first_existing(entry.local, entry.package)
        source = entry.url or entry.torchvision
        if local is None and source is None and Path(self.resource_path(name)).exists():
            local = Path(self.resource_path(name))
        return tree_version(local) if local is not None else f"download {source}"

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
        if self.config.keep_models:
            return {run for run in self.all_runs if self.setting_of(run).trainable}
        drawn = [
            self.targets.figure_runs(kind, figure)
            for kind, figures in self.targets.figures.items()
            if FIGURE_KINDS[kind].needs == "model"
            for figure in figures
        ]
        return {runs[0] for runs in drawn if runs}

    @cached_property
    def monitored_runs(self) -> set[Run]:
        """Runs whose test scores are recorded after every epoch: those the figures of
        training histories draw."""
        return {
            run
            for kind, figures in self.targets.figures.items()
            if FIGURE_KINDS[kind].needs == "history"
            for figure in figures
            for run in self.targets.figure_runs(kind, figure)
        }

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

    def check_banks(self) -> None:
        """Raise :class:`ConfigError` where a bank is too small for the largest K run on it:
        the neighbour search leaves each bank item out of its own neighbours, so K needs
        K + 1 normal images (unless the dataset clips K to its bank, ``clip_k``)."""
        for dataset, bank in sorted({(batch.dataset, batch.bank) for batch in self.batches}):
            entry = self.datasets[dataset]
            runs = [run for run in self.all_runs if (run.dataset, run.bank) == (dataset, bank)]
            with_k = [self.setting_of(run) for run in runs if "k" in self.setting_of(run).settings]
            if entry.clip_k or not with_k:
                continue
            largest = max(with_k, key=lambda setting: setting.settings["k"])
            k = largest.settings["k"]
            variant = self.variants.label(dataset, largest.key)
            if bank != "all":
                size, where = int(bank), f"variants.{variant}.bank_size"
            else:
                size = entry.limit_per_class.get("train")
                where = f"datasets.{dataset}.limit_per_class.train"
            if size is not None and size <= k:
                raise ConfigError(
                    f"{where} = {size} leaves a bank of at most {size} normal images on "
                    f"{dataset}, but variant {variant!r} runs there with k = {k}, which needs "
                    f"k + 1 = {k + 1} (each bank item's neighbours leave the item out): lower "
                    f"k, use more images, or set datasets.{dataset}.clip_k"
                )

    # ------------------------------------------------------------------- outputs

    def final_outputs(self) -> list[str]:
        """What ``snakemake all`` builds: the tables and figures, the outputs of the
        once-rules that are targets (:data:`cap.workflow.registry.RULES`: the runs and
        claims tables, the report, the leaderboard where the config ranks a table), and
        every batch's scores (no later step reads them, so that a deleted scores file is
        made again)."""
        tables = [
            path for table in self.targets.tables for path in self.targets.table_outputs(table)
        ]
        return [
            *tables,
            *self.targets.all_figures(),
            *(path for rule in self.final_rules() for path in rule.outputs.values()),
            *(batch.path(layout.SCORES) for batch in self.batches),
        ]

    def final_rules(self) -> list[registry.Rule]:
        """The once-rules whose outputs ``all`` builds with this config (each rule's
        ``final`` says: always, or where the config asks for it and it has runs to read)."""
        return [rule for rule in registry.RULES if rule.final is not None and rule.final(self)]

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

    # --------------------------------------------------------- the script rules' jobs

    def claims_job(self) -> ClaimsJob:
        """What the ``claims`` rule judges: the paper's claims on our tables that reproduce
        the paper's, and the config's own."""
        return ClaimsJob(
            paper_results=self.config.report.paper_results,
            paper_tables={name: table.paper for name, table in self.targets.tables.items()},
            table_classes={
                name: {dataset: list(ids) for dataset, ids in table.classes.items()}
                for name, table in self.targets.tables.items()
            },
            claims=tuple(
                c for c in self.config.report.claims if c.tables[0] in self.targets.tables
            ),
        )

    def leaderboard_spec(self) -> dict[str, Any]:
        """The table whose methods the leaderboard ranks, as the tables read it."""
        return self.targets.table_spec(self.config.report.leaderboard)

    def report_job(self) -> ReportJob:
        """What the report sets side by side, and how it tells this config's jobs."""
        return ReportJob(
            paper_results=self.config.report.paper_results,
            tolerance=self.config.report.tolerance,
            backbones={
                dataset: [entry.backbone, self.backbone_model(entry.backbone)]
                for dataset, entry in self.datasets.items()
            },
            classes={dataset: self.class_ids(dataset) for dataset in self.datasets},
            tables=list(self.targets.tables),
            resources=list(self.config.resources),
            config=dict(self.config.raw),
        )

    def localized_datasets_pattern(self) -> str:
        """The ``dataset`` wildcard's constraint of the ``localize`` rule: the datasets with
        defect masks."""
        return _one_of(dataset for dataset in self.datasets if self.localizes(dataset))

    def wildcard_constraints(self) -> dict[str, str]:
        """Each wildcard's values in this config, as Snakemake's global constraints."""
        return {
            "dataset": _one_of(self.datasets),
            "backbone": _one_of(self.config.backbones),
            "variant": _one_of(self.variants.names),
            "setting": KEY_PATTERN,
            "cls": _one_of(cls for dataset in self.datasets for cls in self.class_ids(dataset)),
            "resource": _one_of(self.config.resources),
            "table": _one_of(self.config.tables),
            "split": "train|test",
            "seed": r"\d+",
            "name": _one_of(
                figure.name for figures in self.config.figures.values() for figure in figures
            ),
            "bank": r"all|\d+",
        }


def _one_of(values: Iterable[object]) -> str:
    """A wildcard constraint matching exactly ``values`` (none: only "-", never a name)."""
    return "|".join(sorted({re.escape(str(value)) for value in values})) or "-"
