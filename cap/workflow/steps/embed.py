"""``cap embed``: backbone features of one dataset split, to HDF5, once per (dataset,
backbone, split): every class, method and ablation reads that file."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from cap.backbones import backbone_options
from cap.backbones.torch_onnx import DEFAULT_RUNTIME
from cap.evaluation.jobs import EmbedJob
from cap.workflow import layout
from cap.workflow.rule import Rule
from cap.workflow.steps.base import Step, Steps


def build(steps: Steps, wildcards: Mapping[str, str]) -> EmbedJob:
    dataset, backbone = wildcards["dataset"], wildcards["backbone"]
    subset, split = wildcards["subset"], wildcards["split"]
    plan = steps.plan
    entry = plan.datasets[dataset]
    model = steps.config.backbones[backbone]
    options = dict(model.options)
    if "runtime" in backbone_options(model.model):  # recorded, so that a new default re-embeds
        options.setdefault("runtime", DEFAULT_RUNTIME)
    return EmbedJob(
        dataset=entry.source,
        data_root=plan.resource_path(entry.resource),
        split=split,
        backbone=model.model,
        out=layout.EMBEDDINGS.format(
            dataset=dataset, backbone=backbone, subset=subset, split=split
        ),
        weights=None if model.resource is None else plan.resource_path(model.resource),
        category=subset if plan.is_per_category(dataset) else None,
        preprocessing=entry.preprocessing,
        limit_per_class=entry.limit_per_class.get(split),
        feature_maps_per_class=entry.feature_maps_per_class if split == "test" else 0,
        patch_maps=plan.reads_patches(dataset),
        batch_size=model.batch_size,
        bf16=model.bf16,
        options=options,
        skip_corrupt=entry.skip_corrupt,
        validation_in_bank=entry.validation_in_bank and split == "train",
        inputs_version=plan.inputs_version(entry.resource, model.resource),
        offline=steps.config.offline,
    )


def inputs(steps: Steps, wildcards: Mapping[str, str]) -> dict[str, str]:
    """The fetched images, and the weights where the backbone has a resource."""
    dataset = steps.plan.datasets[wildcards["dataset"]]
    files = {"data": layout.RESOURCE.format(resource=dataset.resource)}
    weights = steps.config.backbones[wildcards["backbone"]].resource
    if weights is not None:
        files["weights"] = layout.RESOURCE.format(resource=weights)
    return files


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--num-workers", type=int, help="DataLoader workers (default: cores - 1, at most 4)"
    )


def run(job: EmbedJob, args: argparse.Namespace) -> None:
    from cap.backbones import build_backbone
    from cap.data import load_dataset
    from cap.evaluation.embeddings import extract_embeddings
    from cap.utils.logs import log_startup

    dataset = load_dataset(
        job.dataset,
        job.data_root,
        job.split,
        category=job.category,
        offline=job.offline or None,
        **({"validation_in_bank": True} if job.validation_in_bank else {}),
    )
    backbone_settings = dict(job.options)
    if "offline" in backbone_options(job.backbone):
        backbone_settings["offline"] = job.offline or None
    if "export_cache" in backbone_options(job.backbone):
        backbone_settings["export_cache"] = layout.EXPORTS
    if job.bf16:
        backbone_settings["bf16"] = True
    backbone = build_backbone(
        job.backbone,
        weights=job.weights,
        device=job.device,
        preprocessing=job.preprocessing,
        **backbone_settings,
    )
    log_startup()
    extract_embeddings(
        dataset,
        backbone,
        job.out,
        batch_size=job.batch_size,
        num_workers=args.num_workers,
        limit_per_class=job.limit_per_class,
        feature_maps_per_class=job.feature_maps_per_class,
        patch_maps=job.patch_maps,
        skip_corrupt=job.skip_corrupt,
        attrs={"dataset": job.dataset, "inputs_version": job.inputs_version},
    )


STEP = Step(
    rule=Rule(
        "embed",
        "{dataset}/{backbone}/{subset}/{split}",
        gpu=True,
        threads=8,
        mem_mb=16000,
        runtime=240,
    ),
    stage=2,
    spec=EmbedJob,
    summary="extract backbone features of one dataset split to HDF5",
    build=build,
    inputs=inputs,
    run=run,
    options=options,
)
