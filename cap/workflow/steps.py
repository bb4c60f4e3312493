"""Each job of the workflow as a typed spec (:mod:`cap.evaluation.jobs`), and the files it
reads: what the rules declare and the ``cap`` command is given, from one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cap.evaluation.jobs import (
    EmbedJob,
    EvaluateJob,
    FetchJob,
    Identity,
    NeighborsJob,
    RunSpec,
    TaskSpec,
    TrainJob,
)
from cap.evaluation.records import map_name
from cap.workflow import layout
from cap.workflow.plan import Batch, Plan
from cap.workflow.targets import Run


class Steps:
    """Specs and inputs of the ``cap`` steps' jobs, from a :class:`Plan`."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.config = plan.config

    # ------------------------------------------------------------ fetch and embed

    def spec(self, step: str, wildcards: Mapping[str, str]) -> Any:
        """The spec of the ``step`` job behind ``wildcards`` (a spec writer's job)."""
        batch = self.plan.find_batch(wildcards) if "bank" in wildcards else None
        specs = {
            "fetch": lambda: self.fetch_job(wildcards["resource"]),
            "embed": lambda: self.embed_job(
                wildcards["dataset"], wildcards["backbone"], wildcards["subset"], wildcards["split"]
            ),
            "neighbors": lambda: self.neighbors_job(batch),
            "train": lambda: self.train_job(self.train_run(wildcards)),
            "evaluate": lambda: self.evaluate_job(batch),
        }
        return specs[step]()

    def fetch_job(self, resource: str) -> FetchJob:
        entry = self.config.resources[resource]
        return FetchJob(
            destination=self.plan.resource_path(resource),
            local=entry.local,  # ~ and $VARS expanded where the job runs
            package=entry.package,
            url=entry.url,
            torchvision=entry.torchvision,
            instructions=" ".join(entry.instructions.split()) if entry.instructions else None,
            offline=self.config.offline,
        )

    def embed_inputs(self, dataset: str, backbone: str) -> dict[str, str]:
        """The fetched images, and the weights where the backbone has a resource."""
        inputs = {"data": layout.RESOURCE.format(resource=self.plan.datasets[dataset].resource)}
        weights = self.config.backbones[backbone].resource
        if weights is not None:
            inputs["weights"] = layout.RESOURCE.format(resource=weights)
        return inputs

    def embed_job(self, dataset: str, backbone: str, subset: str, split: str) -> EmbedJob:
        entry = self.plan.datasets[dataset]
        model = self.config.backbones[backbone]
        return EmbedJob(
            dataset=entry.source,
            data_root=self.plan.resource_path(entry.resource),
            split=split,
            backbone=model.model,
            out=layout.EMBEDDINGS.format(
                dataset=dataset, backbone=backbone, subset=subset, split=split
            ),
            weights=None if model.resource is None else self.plan.resource_path(model.resource),
            category=subset if self.plan.is_per_category(dataset) else None,
            preprocessing=entry.preprocessing,
            limit_per_class=entry.limit_per_class.get(split),
            feature_maps_per_class=entry.feature_maps_per_class if split == "test" else 0,
            patch_maps=self.plan.reads_patches(dataset),
            batch_size=model.batch_size,
            bf16=model.bf16,
            options=dict(model.options),
            skip_corrupt=entry.skip_corrupt,
            validation_in_bank=entry.validation_in_bank and split == "train",
            inputs_version=self.plan.inputs_version(entry.resource, model.resource),
            offline=self.config.offline,
        )

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
            for split in ("train", "test")
        }

    def class_inputs(self, batch: Batch) -> dict[str, str]:
        """Embeddings and neighbours of the batch's runs (one class, one bank)."""
        files = self.split_inputs(batch.dataset, batch.backbone, batch.cls)
        return {**files, "neighbors": batch.path(layout.NEIGHBORS)}

    def neighbors_job(self, batch: Batch) -> NeighborsJob:
        return NeighborsJob(
            task=self.task(batch),
            k_max=self.plan.k_max(batch.dataset, batch.bank),
            out=batch.path(layout.NEIGHBORS),
            clip_k=self.plan.datasets[batch.dataset].clip_k,
        )

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

    def train_run(self, wildcards: Mapping[str, str]) -> Run:
        """The kept run behind ``train`` job wildcards."""
        fields = {key: wildcards[key] for key in ("dataset", "backbone", "cls", "bank", "setting")}
        return Run(**fields, seed=int(wildcards["seed"]))

    def train_job(self, run: Run) -> TrainJob:
        """One kept run: fitted, its model written, its scores cached for its batch."""
        batch = self.plan.batch_of(run)
        return TrainJob(
            task=self.task(batch),
            neighbors=batch.path(layout.NEIGHBORS),
            run=replace(self.run_spec(run), model=None),
            model=run.path(layout.MODEL),
            cache=self._cache(),
            clip_k=self.plan.datasets[run.dataset].clip_k,
        )

    def evaluate_inputs(self, batch: Batch) -> dict[str, Any]:
        """The class's inputs, plus the models of the batch's kept runs (fitted first, so
        that the batch finds them in the cache)."""
        models = [
            run.path(layout.MODEL)
            for run in self.plan.batch_runs(batch)
            if run in self.plan.kept_runs
        ]
        return {**self.class_inputs(batch), "models": models}

    def evaluate_job(self, batch: Batch) -> EvaluateJob:
        """Every run of the batch, and the identity its records carry."""
        dataset = batch.dataset
        return EvaluateJob(
            task=self.task(batch),
            neighbors=batch.path(layout.NEIGHBORS),
            runs=tuple(self.run_spec(run) for run in self.plan.batch_runs(batch)),
            identity=Identity(dataset=dataset, backbone=batch.backbone, cls=batch.cls),
            records=batch.path(layout.RECORDS),
            scores=batch.path(layout.SCORES),
            cache=self._cache(),
            clip_k=self.plan.datasets[dataset].clip_k,
            maps=batch.path(layout.MAPS) if self.plan.localizes(dataset) else None,
        )

    # -------------------------------------------------------------------- figures

    def figure_inputs(self, kind: str, wildcards: Mapping[str, str]) -> dict[str, str]:
        """Model, embeddings and neighbours of the run a model figure draws."""
        run = self.plan.targets.figure_run(kind, wildcards)
        return {**self.class_inputs(self.plan.batch_of(run)), "model": run.path(layout.MODEL)}

    def figure_task(self, kind: str, wildcards: Mapping[str, str]) -> TaskSpec:
        """How a model figure reloads its run's task."""
        run = self.plan.targets.figure_run(kind, wildcards)
        return self.task(self.plan.batch_of(run))

    def localization_inputs(self, wildcards: Mapping[str, str]) -> dict[str, str]:
        """The maps, the records they are checked against and the test embeddings of the
        category a localization figure draws."""
        run = self.plan.targets.figure_runs("localization", self._localization(wildcards))[0]
        batch = self.plan.batch_of(run)
        test = self.split_inputs(batch.dataset, batch.backbone, batch.cls)["test_emb"]
        return {
            "maps": batch.path(layout.MAPS),
            "records": batch.path(layout.RECORDS),
            "test_emb": test,
        }

    def localization_columns(self, wildcards: Mapping[str, str]) -> dict[str, str]:
        """Each drawn variant → the entry of its first seed's maps (:func:`map_name`)."""
        figure = self._localization(wildcards)
        columns = {}
        for variant in figure.variants:
            setting = self.plan.variants.setting(figure.dataset, variant).key
            seed = self.plan.variants.seeds_of(figure.dataset, setting)[0]
            columns[variant] = map_name(setting, seed)
        return columns

    def _localization(self, wildcards: Mapping[str, str]) -> Any:
        return self.plan.targets.find_figure("localization", wildcards)

    def figure_dataset(self, dataset: str, cls: str) -> dict[str, str | None]:
        """How a figure reloads the run's images (``cap.reporting.figure_examples.load_images``)."""
        entry = self.plan.datasets[dataset]
        return {
            "source": entry.source,
            "root": self.plan.resource_path(entry.resource),
            "category": cls if self.plan.is_per_category(dataset) else None,
        }

    def _cache(self) -> str | None:
        return layout.RUN_CACHE if self.config.cache else None
