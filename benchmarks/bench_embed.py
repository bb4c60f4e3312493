"""Embedding throughput: the full pipeline (decode, preprocess, DataLoader, backbone, HDF5)
against the backbone's bare forward on pre-made input tensors.

    python benchmarks/bench_embed.py                      # TFLite MobileNetV2 + ResNet-152
    python benchmarks/bench_embed.py --data ../shared/data/cifar10-jpg.zip --n-tflite 2000

The data pipeline should not be the bottleneck: aim for a pipeline/bare ratio ≥ 0.8.
ResNet-152 runs with random weights (speed does not depend on them).
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
from cap.benchmark.embeddings import extract_embeddings
from cap.data import load_dataset
from cap.data.base import ImageDataset

DEFAULT_MODEL = (
    Path(__file__).resolve().parents[2] / "shared" / "models" / "mobilenet_v2_1.0_224_quant.tflite"
)


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
        "--n-tflite", type=int, default=500, help="images for MobileNetV2 (0 skips it)"
    )
    parser.add_argument(
        "--n-resnet", type=int, default=24, help="images for ResNet-152 (0 skips it)"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="interleaved runs; the best of each is kept"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resnet-batch-size", type=int, default=8)
    parser.add_argument(
        "--num-workers", type=int, help="DataLoader workers (default: the library's)"
    )
    parser.add_argument(
        "--num-threads", type=int, help="TFLite interpreter threads (default: all cores)"
    )
    parser.add_argument("--tflite-model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument(
        "--data", type=Path, help="an image folder/zip to read (default: synthetic JPEGs)"
    )
    parser.add_argument("--device", default="auto", help="device of ResNet-152")
    args = parser.parse_args()

    n_images = max(args.n_tflite, args.n_resnet)
    dataset = (
        load_dataset("imagefolder", args.data, "test") if args.data else SyntheticJpegs(n_images)
    )
    runs = []
    if args.n_tflite:
        tflite = build_backbone("tflite", weights=args.tflite_model, num_threads=args.num_threads)
        runs.append((tflite, args.n_tflite, args.batch_size))
    if args.n_resnet:
        resnet = build_backbone("resnet152", weights="random", device=args.device)
        runs.append((resnet, args.n_resnet, args.resnet_batch_size))
    print(
        f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
        f"data: {args.data or 'synthetic 32x32 JPEG'}, best of {args.repeats}"
    )
    header = ("backbone", "device", "images", "bare img/s", "pipeline img/s", "ratio")
    print("{:<10} {:<7} {:>6} {:>11} {:>15} {:>6}".format(*header))
    for backbone, n, batch_size in runs:
        bare = full = 0.0
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits both
            bare = max(bare, bare_throughput(backbone, dataset, n, batch_size))
            full = max(
                full, pipeline_throughput(backbone, dataset, n, batch_size, args.num_workers)
            )
        row = (
            backbone.name,
            backbone.device,
            n,
            f"{bare:.1f}",
            f"{full:.1f}",
            f"{full / bare:.2f}",
        )
        print("{:<10} {:<7} {:>6} {:>11} {:>15} {:>6}".format(*row))


if __name__ == "__main__":
    main()
