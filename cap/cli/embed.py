"""``cap embed``: backbone features of one dataset split, cached in HDF5."""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``embed`` sub-command."""
    parser = subparsers.add_parser(
        "embed",
        help="extract backbone features of one dataset split to HDF5",
        description="Embed every image of one split (all classes) and write FILE.h5 atomically.",
    )
    parser.add_argument(
        "--dataset", required=True, help="cifar10, cifar100, fmnist, mvtec or imagefolder"
    )
    parser.add_argument("--data-root", required=True, type=Path, help="dataset folder (or .zip)")
    parser.add_argument("--split", required=True, choices=("train", "test"))
    parser.add_argument("--category", help="MVTec AD category")
    parser.add_argument("--backbone", required=True, help="resnet152, wide_resnet50_2 or tflite")
    parser.add_argument("--weights", type=Path, help="local checkpoint (tflite: the .tflite model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument(
        "--limit-per-class", type=positive_int, metavar="N", help="first N images of each class"
    )
    parser.add_argument(
        "--feature-maps-per-class", type=int, default=0, metavar="N",
        help="also store the 7x7 maps of the first N images of each class",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument(
        "--num-workers", type=int, help="DataLoader workers (default: cores - 1, at most 4)"
    )
    parser.add_argument(
        "--skip-corrupt", action="store_true", help="skip unreadable images, counting them"
    )
    parser.add_argument(
        "--bf16", action="store_true", help="torchvision backbones: bfloat16 autocast (GPU)"
    )
    parser.add_argument(
        "--offline", action="store_true", help="never download (also: CAP_OFFLINE=1)"
    )
    parser.add_argument(
        "--tflite-pooled-tensor", metavar="T", help="tflite: pooled feature tensor name"
    )
    parser.add_argument(
        "--tflite-map-tensor", metavar="T", help="tflite: 7x7 feature map tensor name"
    )
    parser.add_argument("--out", required=True, type=Path, help="the .h5 file to write")
    parser.set_defaults(handler=run)


def backbone_options(args: argparse.Namespace) -> dict[str, object]:
    """Backbone-specific options given on the command line."""
    if args.backbone == "tflite":
        tensors = {"pooled_tensor": args.tflite_pooled_tensor, "map_tensor": args.tflite_map_tensor}
        return {key: value for key, value in tensors.items() if value}
    return {"offline": args.offline or None, "bf16": args.bf16}


def run(args: argparse.Namespace) -> None:
    """Handler of ``cap embed``."""
    from cap.backbones import build_backbone
    from cap.benchmark.embeddings import extract_embeddings
    from cap.cli import log_startup
    from cap.data import load_dataset
    from cap.utils.errors import ConfigError

    if args.backbone != "tflite" and (args.tflite_pooled_tensor or args.tflite_map_tensor):
        raise ConfigError(
            f"--tflite-* options apply to the tflite backbone only, not {args.backbone!r}"
        )
    dataset = load_dataset(
        args.dataset,
        args.data_root,
        args.split,
        category=args.category,
        offline=args.offline or None,
    )
    backbone = build_backbone(
        args.backbone, weights=args.weights, device=args.device, **backbone_options(args)
    )
    log_startup()
    extract_embeddings(
        dataset,
        backbone,
        args.out,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        limit_per_class=args.limit_per_class,
        feature_maps_per_class=args.feature_maps_per_class,
        skip_corrupt=args.skip_corrupt,
        dataset_name=args.dataset,
        split=args.split,
    )
