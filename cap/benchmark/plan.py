"""Planning the workflow from its config: which runs each table, figure and target needs,
and the command-line arguments of every step.

Pure functions of the (schema-validated) config dict, with no Snakemake import, so
that they are unit-tested directly; ``workflow/rules/common.smk`` wraps them in
one-line input functions. A *run* is one (dataset, backbone, normal class, variant,
seed); a *variant* is a named set of settings resolved as method defaults ←
dataset settings ← the variant's own, and variants that resolve to the same
settings on a dataset share one run (the first of them in config order names it).

Runs are made in *batches*, one job each: the runs of one class that exactly the same
targets (tables, figure kinds) need, all their seeds included. So one process pays
the start-up (imports, reading the embeddings) for many runs, while ``snakemake
table3`` still makes only the runs Table 3 needs: any target's runs are a union of
whole batches.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from cap.benchmark import layout
from cap.data import DATASETS as DATASET_REGISTRY
from cap.detectors import detector_class
from cap.utils.errors import ConfigError

#: Figure kinds that draw a trained model (its first seed), not only histories.
MODEL_FIGURES: tuple[str, ...] = ("attention", "anomaly_maps")


class ConfigReferenceError(ConfigError):
    """A config entry naming something the config (or the dataset) does not define."""


@dataclass(frozen=True, order=True)
class Run:
    """One fit-and-score of a method on one normal class."""

    dataset: str
    backbone: str
    cls: str  # class id, or MVTec category
    variant: str  # the canonical variant (see :meth:`Plan.canonical_variant`)
    seed: int

    def path(self, pattern: str) -> str:
        """``pattern`` (a :mod:`cap.benchmark.layout` path) filled with this run."""
        return pattern.format(**asdict(self))


@dataclass(frozen=True)
class Batch:
    """The runs of one class that the same targets need: one ``evaluate`` job."""

    dataset: str
    backbone: str
    cls: str
    bank: str  # "all", or the bank size N its variants share
    variants: tuple[str, ...]  # canonical variants, config order; every seed of each

    @property
    def name(self) -> str:
        """The ``batch`` wildcard: the variants joined by "+"."""
        return "+".join(self.variants)

    def path(self, pattern: str) -> str:
        """``pattern`` (a :mod:`cap.benchmark.layout` path) filled with this batch."""
        return pattern.format(
            dataset=self.dataset, backbone=self.backbone, cls=self.cls, batch=self.name
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
        self.config = config
        self.datasets: Mapping[str, Any] = config["datasets"]
        self.variants: Mapping[str, Any] = config["variants"]
        self.seeds: list[int] = list(config["seeds"])
        check_references(config)
        self._resolved = {
            (dataset, variant): self._resolve(dataset, variant)
            for dataset in self.datasets
            for variant in self.variants
        }
        self._canonical = {
            (dataset, variant): next(
                name for name in self.variants if self._resolved[dataset, name] == resolved
            )
            for (dataset, variant), resolved in self._resolved.items()
        }

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

    def normal_class(self, dataset: str, cls: str) -> str:
        """The ``--normal-class`` of a run: the class id, or ``none`` where the whole
        training split is normal (per-category datasets)."""
        return "none" if self.is_per_category(dataset) else cls

    def resource_path(self, name: str) -> str:
        """Where the ``fetch`` rule puts resource ``name``'s file."""
        return f"{layout.RESOURCE.format(resource=name)}/{self.config['resources'][name]['file']}"

    # --------------------------------------------------------------------- variants

    def resolve_variant(self, dataset: str, variant: str) -> tuple[str, dict[str, Any]]:
        """(method, settings): method defaults ← dataset settings ← the variant's own."""
        method, settings, _ = self._resolved[dataset, variant]
        return method, dict(settings)

    def bank_of(self, dataset: str, variant: str) -> str:
        """The ``bank`` wildcard of a variant's runs: ``all`` normal training images, or the
        first N (the variant's ``bank_size``)."""
        return self._resolved[dataset, variant][2]

    def _resolve(self, dataset: str, variant: str) -> tuple[str, dict[str, Any], str]:
        spec = dict(self.variants[variant])
        method = spec.pop("method")
        spec.pop("seeds", None)  # not a setting: see seeds_of
        bank_size = spec.pop("bank_size", None)  # not a setting: it selects the bank
        settings = dict(self.config["methods"].get(method, {}))
        settings.update(self.datasets[dataset]["settings"].get(method, {}))
        settings.update(spec)
        return method, settings, "all" if bank_size is None else str(bank_size)

    def canonical_variant(self, dataset: str, variant: str) -> str:
        """The first variant (config order) with the same resolved settings and bank: run
        once, reuse."""
        return self._canonical[dataset, variant]

    def is_trainable(self, dataset: str, variant: str) -> bool:
        """Whether the variant's method learns parameters (it has a model file)."""
        return detector_class(self._resolved[dataset, variant][0]).trainable

    def seeds_of(self, dataset: str, variant: str) -> list[int]:
        """The seeds of a trainable variant's runs: those of every variant that resolves to
        the same settings (its own ``seeds``, else the config's), in increasing order.
        Deterministic methods run once, with the config's smallest seed."""
        if not self.is_trainable(dataset, variant):
            return [min(self.seeds)]
        canonical = self.canonical_variant(dataset, variant)
        return sorted(
            {
                seed
                for name, spec in self.variants.items()
                if self.canonical_variant(dataset, name) == canonical
                for seed in spec.get("seeds", self.seeds)
            }
        )

    def variants_of(self, dataset: str) -> list[str]:
        """Canonical variants some table or figure needs on ``dataset``, in config order."""
        needed = {
            run.variant
            for target in self.targets()
            for run in self.target_runs(target)
            if run.dataset == dataset
        }
        return [name for name in self.variants if name in needed]

    def k_max(self, dataset: str, bank: str = "all") -> int:
        """The largest K any run on ``dataset``'s bank ``bank`` needs: neighbours are searched
        once with it."""
        return max(
            self.resolve_variant(dataset, v)[1].get("k", 1)
            for v in self.variants_of(dataset)
            if self.bank_of(dataset, v) == bank
        )

    def runs(self, dataset: str, variant: str, classes: Iterable[str] | None = None) -> list[Run]:
        """The runs of ``variant`` on ``dataset``: every class (or ``classes``) and seed."""
        canonical = self.canonical_variant(dataset, variant)
        return [
            Run(dataset, self.backbone_of(dataset), cls, canonical, seed)
            for cls in (self.class_ids(dataset) if classes is None else map(str, classes))
            for seed in self.seeds_of(dataset, canonical)
        ]

    @cached_property
    def all_runs(self) -> list[Run]:
        """Every run of ``snakemake all``: those the tables and figures need."""
        return sorted({run for target in self.targets() for run in self.target_runs(target)})

    @cached_property
    def batches(self) -> list[Batch]:
        """Every run of :attr:`all_runs` in exactly one batch: per class and bank, the
        variants grouped by the set of targets that need them."""
        needed_by: dict[tuple[str, str, str], set[str]] = {}
        for target in self.targets():
            for run in self.target_runs(target):
                needed_by.setdefault((run.dataset, run.cls, run.variant), set()).add(target)
        groups: dict[tuple[str, str, str, str, frozenset[str]], list[str]] = {}
        for run in self.all_runs:
            signature = frozenset(needed_by.get((run.dataset, run.cls, run.variant), ()))
            key = (
                run.dataset,
                run.backbone,
                run.cls,
                self.bank_of(run.dataset, run.variant),
                signature,
            )
            variants = groups.setdefault(key, [])
            if run.variant not in variants:
                variants.append(run.variant)
        order = {name: position for position, name in enumerate(self.variants)}
        return [
            Batch(dataset, backbone, cls, bank, tuple(sorted(variants, key=order.__getitem__)))
            for (dataset, backbone, cls, bank, _), variants in groups.items()
        ]

    def batch_of(self, run: Run) -> Batch:
        return self._batch_index[run.dataset, run.cls, run.variant]

    @cached_property
    def _batch_index(self) -> dict[tuple[str, str, str], Batch]:
        return {
            (batch.dataset, batch.cls, variant): batch
            for batch in self.batches
            for variant in batch.variants
        }

    def find_batch(self, dataset: str, cls: str, name: str) -> Batch:
        """The batch behind ``evaluate`` job wildcards."""
        for batch in self.batches:
            if (batch.dataset, batch.cls, batch.name) == (dataset, cls, name):
                return batch
        raise ConfigReferenceError(f"no batch {name!r} of class {cls!r} on dataset {dataset!r}")

    def batch_trains(self, dataset: str, cls: str, batch: str) -> bool:
        """Whether a batch fits a trainable method (its job may then use the GPU)."""
        return any(
            self.is_trainable(dataset, variant)
            for variant in self.find_batch(dataset, cls, batch).variants
        )

    def batch_runs(self, batch: Batch) -> list[Run]:
        return [
            run
            for variant in batch.variants
            for run in self.runs(batch.dataset, variant, [batch.cls])
        ]

    def record_files(self, runs: Iterable[Run]) -> list[str]:
        """The batch record files that hold ``runs``."""
        return sorted({self.batch_of(run).path(layout.RECORDS) for run in runs})

    @cached_property
    def kept_runs(self) -> set[Run]:
        """Runs whose trained model is kept: the first seed of those a model figure draws, or
        every trainable run with ``keep_models``."""
        if self.config["keep_models"]:
            return {run for run in self.all_runs if self.is_trainable(run.dataset, run.variant)}
        return {
            self._figure_runs(kind, figure)[0]
            for kind in MODEL_FIGURES
            for figure in self.config["figures"].get(kind, [])
        }

    @cached_property
    def monitored_runs(self) -> set[Run]:
        """Runs whose test scores are recorded after every epoch: those the score curves draw."""
        return (
            set(self.target_runs("fig_score_curves"))
            if "score_curves" in self.config["figures"]
            else set()
        )

    # ------------------------------------------------------------- tables and figures

    def targets(self) -> list[str]:
        """The named targets: one per table, one per figure kind (``fig_<kind>``)."""
        return [*self.config["tables"], *(f"fig_{kind}" for kind in self.config["figures"])]

    def target_runs(self, target: str) -> list[Run]:
        """The runs ``target`` (a table name or ``fig_<kind>``) reads, in a stable order."""
        if target in self.config["tables"]:
            return self.table_runs(target)
        kind = target.removeprefix("fig_")
        return sorted(
            {
                run
                for figure in self.config["figures"][kind]
                for run in self._figure_runs(kind, figure)
            }
        )

    def table_runs(self, table: str) -> list[Run]:
        """Every seed of the table's variants on its datasets' classes (or the ``classes``
        it names for a dataset)."""
        spec = self.config["tables"][table]
        return sorted(
            {
                run
                for dataset in spec["datasets"]
                for entry in spec["entries"]
                for run in self.runs(dataset, entry["variant"], spec["classes"].get(dataset))
            }
        )

    def table_spec(self, table: str) -> dict[str, Any]:
        """The table as :func:`cap.reporting.tables.build_table` reads it: entries with
        the canonical variant of each dataset."""
        spec = self.config["tables"][table]
        return {
            "name": table,
            "title": spec["title"],
            "layout": spec["layout"],
            "datasets": spec["datasets"],
            "paper_key": spec.get("paper"),
            "reported_rows": spec["reported_rows"],
            "entries": [
                {
                    "label": entry["label"],
                    "variants": {
                        d: self.canonical_variant(d, entry["variant"]) for d in spec["datasets"]
                    },
                }
                for entry in spec["entries"]
            ],
        }

    def table_outputs(self, table: str) -> list[str]:
        return list(layout.table_files(table).values())

    def target_outputs(self, target: str) -> list[str]:
        """The files a named target (see :meth:`targets`) builds."""
        if target in self.config["tables"]:
            return self.table_outputs(target)
        return self.figure_paths(target.removeprefix("fig_"))

    def figure_paths(self, kind: str) -> list[str]:
        """PNG and PDF of every configured figure of ``kind``."""
        return [
            f"{self.figure_stem(kind, figure)}.{extension}"
            for figure in self.config["figures"][kind]
            for extension in layout.FIGURE_FORMATS
        ]

    def figure_stem(self, kind: str, figure: Mapping[str, Any]) -> str:
        return layout.FIGURES[kind].format(**self.figure_wildcards(kind, figure))

    def figure_wildcards(self, kind: str, figure: Mapping[str, Any]) -> dict[str, str]:
        """The figure job's wildcards: its dataset and backbone, and its class and (model
        figures) variant, or (bank curves) its name."""
        dataset = figure["dataset"]
        wildcards = {"dataset": dataset, "backbone": self.backbone_of(dataset)}
        if kind == "bank_curves":
            return {**wildcards, "name": figure["name"]}
        wildcards["cls"] = str(figure["cls"])
        if kind in MODEL_FIGURES:
            wildcards["variant"] = self.canonical_variant(dataset, figure["variant"])
        return wildcards

    def find_figure(self, kind: str, wildcards: Mapping[str, str]) -> dict[str, Any]:
        """The ``figures.<kind>`` entry a figure job's wildcards draw."""
        for figure in self.config["figures"][kind]:
            if self.figure_wildcards(kind, figure) == dict(wildcards):
                return figure
        raise ConfigReferenceError(f"no figures.{kind} entry for {dict(wildcards)}")

    def _figure_runs(self, kind: str, figure: Mapping[str, Any]) -> list[Run]:
        """Every seed of the variants a figure draws on its classes: a model figure shows the
        first seed's model, the curves the mean over the seeds."""
        dataset = figure["dataset"]
        if kind == "bank_curves":
            variants = [v for curve in figure["curves"] for v in curve["variants"]]
            classes = figure.get("classes") or self.class_ids(dataset)
        else:
            variants = (
                [figure["variant"]]
                if kind in MODEL_FIGURES
                else [c["variant"] for c in figure["curves"]]
            )
            classes = [figure["cls"]]
        return [run for variant in variants for run in self.runs(dataset, variant, classes=classes)]

    def figure_run(self, kind: str, wildcards: Mapping[str, str]) -> Run:
        """The run whose trained model a model figure draws (its first seed)."""
        return self._figure_runs(kind, self.find_figure(kind, wildcards))[0]

    def figure_records(self, kind: str, wildcards: Mapping[str, str]) -> list[str]:
        """The batch records that hold every run a figure draws."""
        return self.record_files(self._figure_runs(kind, self.find_figure(kind, wildcards)))

    def curve_specs(self, kind: str, wildcards: Mapping[str, str]) -> list[dict[str, Any]]:
        """Each curve of a score-curve or bank-curve figure as its script reads it from the
        batch records: its label, canonical variants and seeds."""
        figure = self.find_figure(kind, wildcards)
        dataset = figure["dataset"]
        specs = []
        for curve in figure["curves"]:
            names = curve.get("variants", [curve.get("variant")])
            variants = [self.canonical_variant(dataset, name) for name in names]
            seeds = self.seeds_of(dataset, variants[0])
            specs.append({"label": curve["label"], "variants": variants, "seeds": seeds})
        return specs

    def all_figures(self) -> list[str]:
        return [path for kind in self.config["figures"] for path in self.figure_paths(kind)]

    def final_outputs(self) -> list[str]:
        """What ``snakemake all`` builds: tables, figures, the run summary and the report."""
        tables = [path for table in self.config["tables"] for path in self.table_outputs(table)]
        return [*tables, *self.all_figures(), layout.RUNS_TABLE, layout.REPORT]

    # ----------------------------------------------------------------------- jobs

    def jobs(self) -> list[tuple[str, dict[str, str]]]:
        """Every job ``snakemake all`` runs, as (rule, wildcards), grouped by rule."""
        runs = self.all_runs
        used_datasets = sorted({run.dataset for run in runs})
        jobs: list[tuple[str, dict[str, str]]] = []
        resources = sorted(
            {self.datasets[d]["resource"] for d in used_datasets}
            | {
                self.config["backbones"][self.backbone_of(d)]["resource"]
                for d in used_datasets
                if self.config["backbones"][self.backbone_of(d)]["resource"] is not None
            }
        )
        jobs += [("fetch", {"resource": resource}) for resource in resources]
        classes = sorted({(run.dataset, run.backbone, run.cls) for run in runs})
        subsets = sorted({(d, b, self.embedding_subset(d, c)) for d, b, c in classes})
        jobs += [
            ("embed", {"dataset": d, "backbone": b, "subset": s, "split": split})
            for d, b, s in subsets
            for split in ("train", "test")
        ]
        banks = sorted(
            {
                (run.dataset, run.backbone, run.cls, self.bank_of(run.dataset, run.variant))
                for run in runs
            }
        )
        jobs += [
            ("neighbors", {"dataset": d, "backbone": b, "cls": c, "bank": k})
            for d, b, c, k in banks
        ]
        jobs += [("train", _wildcards(run)) for run in sorted(self.kept_runs)]
        jobs += [
            (
                "evaluate",
                {"dataset": b.dataset, "backbone": b.backbone, "cls": b.cls, "batch": b.name},
            )
            for b in self.batches
        ]
        jobs.append(("aggregate", {}))
        jobs += [("table", {"table": table}) for table in self.config["tables"]]
        jobs.append(("claims", {}))
        jobs += [
            (f"figure_{kind}", self.figure_wildcards(kind, figure))
            for kind, figures in self.config["figures"].items()
            for figure in figures
        ]
        jobs.append(("report", {}))
        return jobs

    def benchmark_files(self, exclude: Iterable[str] = ("report",)) -> list[str]:
        """The benchmark file of every job of this config (but those of ``exclude``)."""
        skip = set(exclude)
        return [
            layout.benchmark_path(rule).format(**wildcards)
            for rule, wildcards in self.jobs()
            if rule not in skip
        ]

    def embedding_files(self) -> list[str]:
        return [layout.EMBEDDINGS.format(**w) for rule, w in self.jobs() if rule == "embed"]

    # ----------------------------------------------------------- step arguments

    def split_inputs(self, dataset: str, backbone: str, cls: str) -> dict[str, str]:
        """Train and test embeddings of the split that ``cls`` belongs to."""
        subset = self.embedding_subset(dataset, cls)
        return {
            f"{split}_emb": layout.EMBEDDINGS.format(
                dataset=dataset, backbone=backbone, subset=subset, split=split
            )
            for split in ("train", "test")
        }

    def fetch_args(self, resource: str) -> str:
        entry = self.config["resources"][resource]
        args = ["--destination", self.resource_path(resource)]
        for local in entry["local"]:
            args += ["--local", os.path.expandvars(os.path.expanduser(local))]
        if entry["url"]:
            args += ["--url", entry["url"]]
        if entry["torchvision"]:
            args += ["--torchvision", entry["torchvision"]]
        if entry["instructions"]:
            args += ["--instructions", " ".join(entry["instructions"].split())]
        return shlex.join(args + self._offline_args())

    def embed_inputs(self, dataset: str, backbone: str) -> dict[str, str]:
        """The fetched images, and the weights where the backbone has a resource."""
        resource = self.datasets[dataset]["resource"]
        inputs = {"data": layout.RESOURCE.format(resource=resource)}
        weights = self.config["backbones"][backbone]["resource"]
        if weights is not None:
            inputs["weights"] = layout.RESOURCE.format(resource=weights)
        return inputs

    def embed_args(self, dataset: str, backbone: str, subset: str, split: str) -> str:
        entry = self.datasets[dataset]
        model = self.config["backbones"][backbone]
        args = [
            "--dataset", entry["source"],
            "--data-root", self.resource_path(entry["resource"]),
            "--split", split,
            "--backbone", model["model"],
            "--batch-size", str(model["batch_size"]),
        ]  # fmt: skip
        if model["resource"] is not None:
            args += ["--weights", self.resource_path(model["resource"])]
        if self.is_per_category(dataset):
            args += ["--category", subset]
        limit = entry["limit_per_class"].get(split)
        if limit:
            args += ["--limit-per-class", str(limit)]
        if split == "test" and entry["feature_maps_per_class"]:
            args += ["--feature-maps-per-class", str(entry["feature_maps_per_class"])]
        if model["bf16"]:
            args.append("--bf16")
        for option, value in model["options"].items():
            args += [f"--tflite-{option.removesuffix('_tensor')}-tensor", value]
        return shlex.join(args + self._offline_args())

    def split_args(self, dataset: str, backbone: str, cls: str, bank: str = "all") -> str:
        """How a job selects the run's split: the backbone to expect, the normal class and
        the bank size (when not all of the class)."""
        args = [
            "--backbone",
            self.backbone_model(backbone),
            "--normal-class",
            self.normal_class(dataset, cls),
        ]
        if bank != "all":
            args += ["--bank-size", bank]
        return shlex.join(args)

    def neighbor_args(self, dataset: str, backbone: str, cls: str, bank: str) -> str:
        args = ["--k-max", str(self.k_max(dataset, bank))] + self._clip_args(dataset)
        return f"{self.split_args(dataset, backbone, cls, bank)} {shlex.join(args)}"

    def run_spec(self, run: Run) -> dict[str, Any]:
        """What ``cap evaluate`` / ``cap train`` need to make one run (a JSON object)."""
        method, settings = self.resolve_variant(run.dataset, run.variant)
        spec = {"variant": run.variant, "method": method, "seed": run.seed, "settings": settings}
        if run in self.monitored_runs:
            spec["monitor"] = True
        if run in self.kept_runs:
            spec["model"] = run.path(layout.MODEL)
        return spec

    def class_inputs(
        self, dataset: str, backbone: str, cls: str, bank: str = "all"
    ) -> dict[str, str]:
        """Embeddings and neighbours of the runs on class ``cls`` with bank ``bank``."""
        neighbors = layout.NEIGHBORS.format(dataset=dataset, backbone=backbone, cls=cls, bank=bank)
        return {**self.split_inputs(dataset, backbone, cls), "neighbors": neighbors}

    def train_inputs(
        self, dataset: str, backbone: str, cls: str, variant: str, seed: str
    ) -> dict[str, str]:
        return self.class_inputs(dataset, backbone, cls, self.bank_of(dataset, variant))

    def train_args(self, dataset: str, backbone: str, cls: str, variant: str, seed: str) -> str:
        """One kept run: its split and its spec, without the model it writes."""
        spec = self.run_spec(Run(dataset, backbone, cls, variant, int(seed)))
        spec.pop("model")
        return self._runs_args(dataset, backbone, cls, self.bank_of(dataset, variant), [spec])

    def evaluate_inputs(self, dataset: str, backbone: str, cls: str, batch: str) -> dict[str, Any]:
        """The class's inputs, plus the models of the batch's kept runs."""
        found = self.find_batch(dataset, cls, batch)
        models = [run.path(layout.MODEL) for run in self.batch_runs(found) if run in self.kept_runs]
        return {**self.class_inputs(dataset, backbone, cls, found.bank), "models": models}

    def evaluate_args(self, dataset: str, backbone: str, cls: str, batch: str) -> str:
        """The batch's split, the spec of each of its runs, and the identity they record."""
        found = self.find_batch(dataset, cls, batch)
        specs = [self.run_spec(run) for run in self.batch_runs(found)]
        tags = [
            f"--tag={key}={value}"
            for key, value in (("dataset", dataset), ("backbone", backbone), ("cls", cls))
        ]
        return f"{self._runs_args(dataset, backbone, cls, found.bank, specs)} {shlex.join(tags)}"

    def _runs_args(
        self, dataset: str, backbone: str, cls: str, bank: str, specs: list[dict[str, Any]]
    ) -> str:
        args = [f"--run={json.dumps(spec, sort_keys=True)}" for spec in specs]
        args += self._clip_args(dataset)
        return f"{self.split_args(dataset, backbone, cls, bank)} {shlex.join(args)}"

    def figure_inputs(self, kind: str, wildcards: Mapping[str, str]) -> dict[str, str]:
        """Model, embeddings and neighbours of the run a model figure draws."""
        run = self.figure_run(kind, wildcards)
        bank = self.bank_of(run.dataset, run.variant)
        inputs = self.class_inputs(run.dataset, run.backbone, run.cls, bank)
        return {**inputs, "model": run.path(layout.MODEL)}

    def figure_run_params(self, kind: str, wildcards: Mapping[str, str]) -> dict[str, Any]:
        """How a model figure reloads its run's split: ``load_trained_run``'s normal class,
        backbone and bank size."""
        run = self.figure_run(kind, wildcards)
        bank = self.bank_of(run.dataset, run.variant)
        return {
            "normal_class": None if self.is_per_category(run.dataset) else int(run.cls),
            "backbone": self.backbone_model(run.backbone),
            "bank_size": None if bank == "all" else int(bank),
        }

    def figure_dataset(self, dataset: str, cls: str) -> dict[str, str | None]:
        """How a figure reloads the run's images (``cap.reporting.figure_examples.load_images``)."""
        entry = self.datasets[dataset]
        return {
            "source": entry["source"],
            "root": self.resource_path(entry["resource"]),
            "category": cls if self.is_per_category(dataset) else None,
        }

    def _clip_args(self, dataset: str) -> list[str]:
        return ["--clip-k"] if self.datasets[dataset]["clip_k"] else []

    def _offline_args(self) -> list[str]:
        return ["--offline"] if self.config["offline"] else []


def check_references(config: Mapping[str, Any]) -> None:
    """Cross-references the JSON schema cannot express, each error naming the key."""
    datasets, variants = config["datasets"], config["variants"]
    for name, dataset in datasets.items():
        _require(dataset["resource"], config["resources"], f"datasets.{name}.resource")
        _require(dataset["backbone"], config["backbones"], f"datasets.{name}.backbone")
        for method in dataset["settings"]:
            _require(method, config["methods"], f"datasets.{name}.settings")
        _check_classes(name, dataset)
    for name, backbone in config["backbones"].items():
        if backbone["resource"] is not None:
            _require(backbone["resource"], config["resources"], f"backbones.{name}.resource")
    for name, table in config["tables"].items():
        for dataset in table["datasets"]:
            _require(dataset, datasets, f"tables.{name}.datasets")
        for entry in table["entries"]:
            _require(entry["variant"], variants, f"tables.{name}.entries")
        for dataset, classes in table.get("classes", {}).items():
            _require(dataset, table["datasets"], f"tables.{name}.classes")
            _require_each(classes, datasets[dataset]["classes"], f"tables.{name}.classes.{dataset}")
    for index, claim in enumerate(config["report"].get("claims", [])):
        where = f"report.claims[{index}]"
        _require(claim["table"], config["tables"], f"{where}.table")
        table = config["tables"][claim["table"]]
        labels = [entry["label"] for entry in table["entries"]]
        for side in ("higher", "lower"):
            rows = [claim[side]] if isinstance(claim[side], str) else claim[side]
            _require_each(rows, labels, f"{where}.{side}")
        _require_each(claim["datasets"], table["datasets"], f"{where}.datasets")
    for kind, figures in config["figures"].items():
        for index, figure in enumerate(figures):
            where = f"figures.{kind}[{index}]"
            _require(figure["dataset"], datasets, f"{where}.dataset")
            classes = datasets[figure["dataset"]]["classes"]
            _require_each(
                [figure["cls"]] if "cls" in figure else figure.get("classes", []),
                classes,
                f"{where}.cls",
            )
            curves = figure.get("curves", [])
            named = [figure.get("variant"), *(c.get("variant") for c in curves)]
            named += [v for c in curves for v in c.get("variants", [])]
            _require_each([v for v in named if v is not None], variants, f"{where}.variant")


def _check_classes(name: str, dataset: Mapping[str, Any]) -> None:
    """Normal classes must exist in the dataset: ids in range, or known categories."""
    entry = DATASET_REGISTRY[dataset["source"]]
    where = f"datasets.{name}.classes"
    if entry.per_category:
        _require_each(dataset["classes"], entry.classes(None, None), where)
        return
    not_ids = [c for c in dataset["classes"] if not isinstance(c, int) or c < 0]
    if not_ids:
        raise ConfigReferenceError(f"{where}: {not_ids} are not class ids (integers ≥ 0)")
    if entry.fixed_classes:  # an image folder's classes are known only once it is fetched
        _require_each(dataset["classes"], range(len(entry.classes(None, None))), where)


def _require_each(names: Iterable[object], known: Iterable[object], where: str) -> None:
    for name in names:
        _require(name, known, where)


def _require(name: object, known: Iterable[object], where: str) -> None:
    known = list(known)
    if str(name) not in {str(k) for k in known}:
        raise ConfigReferenceError(
            f"{where} refers to {name!r}, which is not defined; valid: {sorted(map(str, known))}"
        )


def _wildcards(run: Run) -> dict[str, str]:
    return {key: str(value) for key, value in asdict(run).items()}
