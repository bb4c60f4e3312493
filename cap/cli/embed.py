"""``cap embed``: backbone features of one dataset split, cached in HDF5."""

from __future__ import annotations

import argparse

from cap.evaluation.jobs import EmbedJob, read_spec

SUMMARY = "extract backbone features of one dataset split to HDF5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cap embed`` beside its spec."""
    parser.add_argument(
        "--num-workers", type=int, help="DataLoader workers (default: cores - 1, at most 4)"
    )


def run(args: argparse.Namespace) -> None:
    """Handler of ``cap embed``."""
    from cap.backbones import backbone_options, build_backbone
    from cap.cli import log_startup
    from cap.data import load_dataset
    from cap.evaluation.embeddings import extract_embeddings

    job = read_spec(EmbedJob, args.spec)
    dataset = load_dataset(
        job.dataset,
        job.data_root,
        job.split,
        category=job.category,
        offline=job.offline or None,
        **({"validation_in_bank": True} if job.validation_in_bank else {}),
    )
    options = dict(job.options)
    if "offline" in backbone_options(job.backbone):
        options["offline"] = job.offline or None
    if job.bf16:
        options["bf16"] = True
    backbone = build_backbone(
        job.backbone,
        weights=job.weights,
        device=job.device,
        preprocessing=job.preprocessing,
        **options,
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
