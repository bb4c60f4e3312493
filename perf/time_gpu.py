"""The paper's experiments on one GPU: embedding throughput, CAP fits and process start-up,
on synthetic inputs of the paper's shape, with the whole paper's time projected from them.

    python perf/time_gpu.py            # CUDA: the paper's shapes, a few minutes (H200)
    python perf/time_gpu.py --tiny     # tiny shapes (the default where CUDA is absent)

No network: the backbone is a random-init ResNet-152 (speed does not depend on the
weights) and every input is synthetic.

- embedding (:func:`bench_embedding`): ``--images`` random 32×32 JPEGs through the
  library's extraction pipeline (decode, 224×224 preprocessing, DataLoader workers,
  backbone, HDF5), against the backbone's bare forward on pre-made inputs measured in
  the same run, in float32 and bfloat16 (``perf/time_embed.py``'s functions);
- CAP fits (:func:`bench_fits`): paper-size fits in this process (N = 5,000, D = 2,048,
  K = 32, batch 64, 10 epochs) on random features with random neighbour indices, so
  that a step projects as many distinct bank rows as on real features (U ≈ 1,700-2,000;
  blob-shaped features give far fewer), for each ``matmul_precision``: seconds per fit
  and achieved TFLOP/s against the rate of a bare D × D @ D × U matmul measured here;
- start-up (:func:`bench_startup`): a fresh ``python -c "import torch; torch.zeros(1,
  device=...)"``, what every workflow job pays before its work;
- the paper's runs through the workflow (:func:`bench_runs`): the CIFAR-10 runs of
  ``config/config.yaml`` (Tables 1–4, their variants and seeds) on ``--classes`` normal
  classes at N = 5,000, D = 2,048 over synthetic features (``perf/time_workflow.py``),
  with ``snakemake --cores`` (16 on the GPU machine): wall time, job time per rule, the
  start-up share and the seconds per fit as the jobs measured them;
- the GPU's busy share during each of them, sampled by ``nvidia-smi`` every 200 ms.

The whole paper's time is then projected from these figures, with the formula; the
paper's work (CAP fits, embedded images, jobs) is counted by the planning module from
``config/config.yaml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # time_embed, when imported
from time_embed import SyntheticJpegs, bare_throughput, pipeline_throughput
from time_workflow import (
    SyntheticShape,
    job_times,
    paper_cifar10_config,
    run_workflow,
    startup_times,
    workflow_summary,
    write_synthetic_embeddings,
)

from cap import CAPDetector
from cap.backbones import build_backbone
from cap.detectors.cap_choices import MATMUL_PRECISIONS
from cap.detectors.cap_training import epoch_layout, float32_matmul_precision
from cap.evaluation.records import read_runs_table
from cap.utils.torch_io import resolve_device
from cap.workflow import Plan, layout

REPO = Path(__file__).resolve().parents[1]

#: Images per (train, test) split of each dataset source; MVTec AD per category.
SPLIT_IMAGES: dict[str, tuple[int, int]] = {
    "cifar10": (50_000, 10_000),
    "cifar100": (50_000, 10_000),
    "fmnist": (60_000, 10_000),
}
MVTEC_IMAGES: dict[str, tuple[int, int]] = {
    "bottle": (209, 83), "cable": (224, 150), "capsule": (219, 132), "carpet": (280, 117),
    "grid": (264, 78), "hazelnut": (391, 110), "leather": (245, 124), "metal_nut": (220, 115),
    "pill": (267, 167), "screw": (320, 160), "tile": (230, 117), "toothbrush": (60, 42),
    "transistor": (213, 100), "wood": (247, 79), "zipper": (240, 151),
}  # fmt: skip


# ----------------------------------------------------------------------------- sampling


class GpuBusy:
    """The GPU's busy share (``utilization.gpu``) sampled by ``nvidia-smi`` while a block runs."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.samples: list[float] = []
        self.note = ""
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> GpuBusy:
        if self.device.type != "cuda":
            self.note = "not sampled (no GPU)"
        elif shutil.which("nvidia-smi") is None:
            self.note = "not sampled (nvidia-smi absent)"
        else:
            command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
            command += ["-lms", "200", "-i", _physical_gpu(self.device)]
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        self.samples = [float(line) for line in output.split() if _is_number(line)]
        if not self.samples:
            self.note = "no sample (nvidia-smi gave none)"

    def __str__(self) -> str:
        if not self.samples:
            return f"gpu busy: {self.note}"
        return f"gpu busy {np.mean(self.samples):.0f}% ({len(self.samples)} samples)"


def _physical_gpu(device: torch.device) -> str:
    """nvidia-smi's index of ``device`` (through CUDA_VISIBLE_DEVICES where it is set)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[index].strip() if index < len(visible) else str(index)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(device: torch.device) -> Iterator[list[float]]:
    """Seconds of a block, the device's queued work included: ``with timed(d) as t: ...; t[0]``."""
    synchronize(device)
    result = [0.0]
    start = time.perf_counter()
    try:
        yield result
    finally:
        synchronize(device)
        result[0] = time.perf_counter() - start


# ----------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    """What one benchmark run measures."""

    images: int  # synthetic images through the embedding pipeline
    bare_images: int  # images of the bare forward (held in memory as 224×224 inputs)
    embed_batch: int  # images per forward pass (the config's backbone batch_size)
    crop: int  # the backbone's input side (224 = the paper's)
    bank: int  # N
    dim: int  # D
    k: int  # K
    batch: int  # CAP's batch size B
    epochs: int
    fit_repeats: int  # timed fits per precision (after one warm-up fit)
    startup_repeats: int
    probe_seconds: float  # how long each matmul-rate loop runs


PAPER = Shape(60_000, 2048, 64, 224, 5000, 2048, 32, 64, 10, 2, 3, 0.5)
#: Seconds on a laptop CPU: ResNet-152 on 32×32 inputs (no upscaling), a toy CAP.
TINY = Shape(8, 8, 8, 32, 200, 64, 32, 64, 1, 1, 1, 0.05)
#: The synthetic CIFAR-10 of the workflow runs: the paper's (1,000 test items per class:
#: the whole 10,000-image test split), and a toy one.
PAPER_RUNS = SyntheticShape(per_class=5000, test_per_class=1000, dim=2048)
TINY_RUNS = SyntheticShape(per_class=70, test_per_class=8, dim=16)


# ----------------------------------------------------------------------------- parts


@dataclass
class EmbeddingResult:
    precision: str  # "fp32" or "bf16"
    pipeline: float  # images/s
    bare: float  # images/s
    busy: GpuBusy


def bench_embedding(
    shape: Shape, device: torch.device, workers: int | None
) -> list[EmbeddingResult]:
    """Pipeline and bare-forward images/s of a random-init ResNet-152, fp32 then bf16."""
    dataset = SyntheticJpegs(shape.images)
    backbone = build_backbone("resnet152", weights="random", device=str(device))
    if shape.crop != backbone.transform.crop:
        backbone.transform = dataclasses.replace(backbone.transform, crop=shape.crop)
    results = []
    for precision in ("fp32", "bf16"):
        backbone.bf16 = precision == "bf16"
        bare = max(  # best of two: the first pays for lazy initialisation
            bare_throughput(backbone, dataset, shape.bare_images, shape.embed_batch)
            for _ in range(2)
        )
        with GpuBusy(device) as busy:  # the pipeline's share: is the GPU kept fed?
            pipeline = pipeline_throughput(
                backbone, dataset, shape.images, shape.embed_batch, workers
            )
        results.append(EmbeddingResult(precision, pipeline, bare, busy))
    return results


@dataclass
class FitResult:
    precision: str  # a MATMUL_PRECISIONS entry
    seconds: float  # per fit (best of the timed ones)
    flop: float  # per fit
    matmul_rate: float  # FLOP/s of a bare D × D @ D × U matmul at this precision
    busy: GpuBusy

    @property
    def achieved(self) -> float:
        """FLOP/s of the fit's projections."""
        return self.flop / self.seconds


def paper_features(shape: Shape, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random positive features (N, D) and random neighbour indices (N, K), each row K
    distinct items other than itself: batches then hold as many distinct rows as real
    data (neighbourhoods of real features overlap little at B = 64)."""
    rng = np.random.default_rng(seed)
    bank = np.abs(rng.standard_normal((shape.bank, shape.dim), dtype=np.float32))
    index = np.empty((shape.bank, shape.k), dtype=np.int64)
    for row in range(shape.bank):
        others = rng.choice(shape.bank - 1, size=shape.k, replace=False)
        index[row] = others + (others >= row)  # skip the item itself
    return bank, index


def mean_distinct_rows(shape: Shape, index: np.ndarray, seed: int = 0) -> float:
    """Ū: distinct bank rows per step, over one epoch's batches."""
    order = np.random.default_rng(seed).permutation(shape.bank)
    layouts = epoch_layout(order, index, shape.batch, torch.device("cpu"))
    return float(np.mean([len(layout.rows) for layout in layouts]))


def fit_flop(shape: Shape, distinct_rows: float) -> float:
    """FLOP of one fit's projections: epochs × ⌈N/B⌉ steps × 16·Ū·D².

    A step runs 8 matmuls of Ū × D × D (2·Ū·D² FLOP each): the head forward and its
    weight gradient (the bank needs no gradient), and W_Q and W_K forward, input gradient
    and weight gradient. The attention (K² per item) and the loss are left out.
    """
    steps = shape.epochs * math.ceil(shape.bank / shape.batch)
    return steps * 16 * distinct_rows * shape.dim**2


def matmul_rate(
    dim: int, rows: int, precision: str, device: torch.device, seconds: float = 0.5
) -> float:
    """FLOP/s of a D × D @ D × U matmul in a loop of about ``seconds``, at ``precision``."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(dim, dim, device=device, dtype=dtype)
    b = torch.randn(dim, rows, device=device, dtype=dtype)
    with float32_matmul_precision(precision, device):
        with timed(device) as probe:
            for _ in range(3):
                a @ b
        repeats = max(3, int(seconds / max(probe[0] / 3, 1e-6)))
        with timed(device) as elapsed:
            for _ in range(repeats):
                a @ b
    return repeats * 2 * dim * dim * rows / elapsed[0]


def bench_fits(
    shape: Shape, device: torch.device, precisions: tuple[str, ...] = MATMUL_PRECISIONS
) -> tuple[float, list[FitResult]]:
    """Ū and, per precision, the best of ``fit_repeats`` timed CAP fits after a warm-up."""
    bank, index = paper_features(shape)
    distinct = mean_distinct_rows(shape, index)
    results = []
    for precision in precisions:

        def fit(epochs: int, precision: str = precision) -> None:
            CAPDetector(
                k=shape.k,
                epochs=epochs,
                batch_size=shape.batch,
                device=str(device),
                matmul_precision=precision,
            ).fit(bank, neighbors=index)

        fit(1)  # warm-up: kernels, cuBLAS handles and workspaces
        rate = matmul_rate(shape.dim, round(distinct), precision, device, shape.probe_seconds)
        with GpuBusy(device) as busy:
            seconds = []
            for _ in range(shape.fit_repeats):
                with timed(device) as elapsed:
                    fit(shape.epochs)
                seconds.append(elapsed[0])
        results.append(FitResult(precision, min(seconds), fit_flop(shape, distinct), rate, busy))
    return distinct, results


def bench_startup(device: torch.device, repeats: int) -> tuple[list[float], GpuBusy]:
    """Seconds of fresh ``python -c "import torch; torch.zeros(1, device=...)"`` processes."""
    code = f"import torch; torch.zeros(1, device={str(device)!r})"
    seconds = []
    with GpuBusy(device) as busy:
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            seconds.append(time.perf_counter() - start)
    return seconds, busy


@dataclass
class RunsResult:
    lines: list[str]  # the workflow's wall, job time per rule and start-up share
    fits: int  # CAP fits made
    fit_seconds: float  # mean per CAP fit, as the jobs measured it
    startup: float  # mean start-up of a cap job
    busy: GpuBusy


def bench_runs(
    shape: SyntheticShape, classes: int, cores: int, device: torch.device, seeds: list[int] | None
) -> RunsResult:
    """The paper's CIFAR-10 runs (Tables 1–4) on ``classes`` classes through the workflow."""
    import tempfile

    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        write_synthetic_embeddings(workdir, shape)
        tables = ["table1", "table2", "table3", "table4"]
        config = paper_cifar10_config(workdir, tables=tables, classes=classes, seeds=seeds)
        config["methods"].setdefault("cap", {})["device"] = str(device)
        with GpuBusy(device) as busy:
            wall = run_workflow(workdir, config, cores)
        runs = read_runs_table(workdir / layout.RUNS_TABLE)
        cap = runs[runs["method"] == "cap"]
        lines = workflow_summary(workdir, job_times(workdir), wall, cores)
        return RunsResult(lines, len(cap), cap["fit_s"].mean(), startup_times(workdir).mean(), busy)


# ----------------------------------------------------------------------------- projection


@dataclass(frozen=True)
class PaperWork:
    """What the paper's workflow does (config/config.yaml), as the planning module counts it."""

    fits: int  # CAP fits
    images: int  # images embedded, every (dataset, split) file
    files: int  # embedding files (one job each)
    jobs: int  # processes started: evaluate jobs + embedding jobs


def paper_work(config: Path) -> PaperWork:
    """CAP fits, evaluate jobs and embedding files planned for ``config``; their images."""
    from cap.workflow.schema import validated

    plan = Plan(validated(yaml.safe_load(config.read_text())))
    fits = sum(plan.setting_of(run).trainable for run in plan.all_runs)
    files = plan.embedding_files()
    images = 0
    for path in files:
        dataset, _, subset, split = Path(path).with_suffix("").parts[-4:]
        source = plan.datasets[dataset].source
        counts = MVTEC_IMAGES[subset] if source == "mvtec" else SPLIT_IMAGES[source]
        images += counts[0 if split == "train" else 1]
    return PaperWork(fits, images, len(files), len(plan.batches) + len(files))


def project_paper(
    work: PaperWork, fit_seconds: float, images_per_second: float, startup: float
) -> tuple[float, str]:
    """Seconds of the whole paper on one device, one job at a time; and the formula."""
    total = work.fits * fit_seconds + work.images / images_per_second + work.jobs * startup
    formula = (
        f"T = F·t_fit + I/r_embed + J·t_start = {work.fits:,} × {fit_seconds:.2f} s"
        f" + {work.images:,} / {images_per_second:,.0f} img/s + {work.jobs} × {startup:.1f} s"
        f" = {total:,.0f} s ({total / 60:.1f} min)"
    )
    return total, formula


# ----------------------------------------------------------------------------- main


def _rate(flop_per_second: float) -> str:
    return f"{flop_per_second / 1e12:.3g} TFLOP/s"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (default without CUDA)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--images", type=int, help="images through the embedding pipeline")
    parser.add_argument("--epochs", type=int, help="CAP epochs per fit")
    parser.add_argument("--num-workers", type=int, help="DataLoader workers (library default)")
    parser.add_argument(
        "--parts", default="embedding,fits,startup,runs", help="comma-separated subset to run"
    )
    parser.add_argument("--classes", type=int, default=2, help="normal classes of the runs part")
    parser.add_argument(
        "--cores", type=int, default=os.cpu_count(), help="snakemake --cores of the runs part"
    )
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    tiny = args.tiny or device.type != "cuda"
    shape = TINY if tiny else PAPER
    if args.images:
        shape = dataclasses.replace(shape, images=args.images)
    if args.epochs:
        shape = dataclasses.replace(shape, epochs=args.epochs)
    parts = set(args.parts.split(","))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    out(
        f"capbench GPU benchmark: {name} ({device}), {'tiny' if tiny else 'paper'} shapes, "
        f"torch {torch.__version__}, {os.cpu_count()} cores"
    )
    start = time.perf_counter()
    embedding = part_embedding(shape, device, args.num_workers, out) if "embedding" in parts else []
    fits = part_fits(shape, device, out) if "fits" in parts else []
    startup = part_startup(shape, device, out) if "startup" in parts else []
    runs = part_runs(args, tiny, device, out) if "runs" in parts else None
    out(f"[summary] benchmark wall time {time.perf_counter() - start:.1f} s")
    if embedding and fits and (startup or runs):
        summarise(args.config, embedding, fits, startup, runs, tiny, out)


def part_embedding(
    shape: Shape, device: torch.device, workers: int | None, out: Callable[[str], None]
) -> list[EmbeddingResult]:
    """[A] the embedding pipeline against the bare forward, per precision."""
    out(
        f"[A] embedding: random-init ResNet-152, {shape.images:,} synthetic 32x32 JPEGs at "
        f"{shape.crop}x{shape.crop}, batch {shape.embed_batch}; bare forward on "
        f"{shape.bare_images:,} pre-made inputs"
    )
    embedding = bench_embedding(shape, device, workers)
    for e in embedding:
        out(
            f"  embed {e.precision}: pipeline {e.pipeline:,.1f} img/s, bare {e.bare:,.1f} "
            f"img/s, ratio {e.pipeline / e.bare:.2f}, pipeline's {e.busy}"
        )
    return embedding


def part_fits(shape: Shape, device: torch.device, out: Callable[[str], None]) -> list[FitResult]:
    """[B] paper-size CAP fits per matmul precision, against the matmul rate."""
    distinct, fits = bench_fits(shape, device)
    out(
        f"[B] CAP fits: N={shape.bank:,} D={shape.dim:,} K={shape.k} batch {shape.batch}, "
        f"{shape.epochs} epoch(s), U = {distinct:,.0f} distinct rows per step (mean)"
    )
    out(
        f"  FLOP per fit = epochs × ⌈N/B⌉ × 16·U·D² = {shape.epochs} × "
        f"{math.ceil(shape.bank / shape.batch)} × 16 × {distinct:,.0f} × {shape.dim:,}² "
        f"= {fits[0].flop / 1e12:.4g} TFLOP"
    )
    for f in fits:
        out(
            f"  fit {f.precision}: {f.seconds:.3f} s/fit, achieved {_rate(f.achieved)}, "
            f"matmul {_rate(f.matmul_rate)}, share {f.achieved / f.matmul_rate:.2f}, {f.busy}"
        )
    return fits


def part_startup(shape: Shape, device: torch.device, out: Callable[[str], None]) -> list[float]:
    """The start-up of a process that touches the device."""
    startup, busy = bench_startup(device, shape.startup_repeats)
    out(
        f"[start-up] python -c \"import torch; torch.zeros(1, device='{device}')\": "
        f"{min(startup):.2f} s best, {np.mean(startup):.2f} s mean of {len(startup)}, {busy}"
    )
    return startup


def part_runs(
    args: argparse.Namespace, tiny: bool, device: torch.device, out: Callable[[str], None]
) -> RunsResult:
    """[C] the paper's CIFAR-10 runs of Tables 1-4 through the workflow."""
    shape = TINY_RUNS if tiny else PAPER_RUNS
    runs = bench_runs(shape, args.classes, args.cores, device, [0] if tiny else None)
    out(
        f"[C] the paper's CIFAR-10 runs (Tables 1-4) through the workflow: {args.classes} "
        f"classes, N={shape.per_class:,} D={shape.dim:,}, "
        f"snakemake --cores {args.cores}; {runs.fits} CAP fits"
    )
    for line in runs.lines:
        out(f"  {line}")
    out(f"  CAP fit in the jobs: {runs.fit_seconds:.3f} s mean per fit; {runs.busy}")
    return runs


def summarise(
    config: Path,
    embedding: list[EmbeddingResult],
    fits: list[FitResult],
    startup: list[float],
    runs: RunsResult | None,
    tiny: bool,
    out: Callable[[str], None],
) -> None:
    """The whole paper projected from the parts' figures, as configured and at its fastest."""
    work = paper_work(config)
    out(
        f"  paper work: F = {work.fits:,} CAP fits, I = {work.images:,} images in "
        f"{work.files} embedding files, J = {work.jobs} jobs ({work.jobs - work.files} "
        f"evaluate + {work.files} embed), one at a time"
    )
    fp32 = next(e for e in embedding if e.precision == "fp32")
    configured = next(f for f in fits if f.precision == "highest")
    best_fit = min(fits, key=lambda f: f.seconds)
    best_embed = max(embedding, key=lambda e: e.pipeline)
    start_up = runs.startup if runs else float(np.mean(startup))
    choices = [
        ("as configured (fp32 embedding, matmul_precision highest)", configured.seconds, fp32),
        (
            f"fastest measured ({best_embed.precision} embedding, matmul_precision "
            f"{best_fit.precision})",
            best_fit.seconds,
            best_embed,
        ),
    ]
    if runs:
        choices.append(("the workflow's own fits (part C)", runs.fit_seconds, fp32))
    for label, fit_seconds, embed in choices:
        _, formula = project_paper(work, fit_seconds, embed.pipeline, start_up)
        out(f"  projected whole paper, {label}: {formula}")
    if tiny:
        out("  (tiny shapes: the projection applies the tiny figures to the paper's work)")
    out(
        "  formula: T = F·t_fit + I/r_embed + J·t_start (t_fit at the paper's CIFAR-10 "
        "bank, an upper bound for CIFAR-100's half-size banks and MVTec's tiny ones; "
        "MVTec's WRN-50-2 images at ResNet-152's rate; t_start from part C's jobs where "
        "it ran)"
    )


if __name__ == "__main__":
    main()
