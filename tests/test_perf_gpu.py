"""perf/time_gpu.py end to end at its tiny shapes (on the CPU where there is no CUDA)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "perf" / "time_gpu.py"


@pytest.fixture(scope="module")
def time_gpu():
    spec = importlib.util.spec_from_file_location("time_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.slow  # about 50 s on 2 busy cores
@pytest.mark.usefixtures("single_thread_math")  # a smoke run: fast on a shared, busy CPU
def test_the_tiny_benchmark_prints_every_figure_and_the_projection(time_gpu) -> None:
    lines: list[str] = []
    time_gpu.main(["--tiny", "--cores", "1"], out=lines.append)
    text = "\n".join(lines)
    expected = [
        r"^capbench GPU benchmark: .*tiny shapes",
        r"^\[A\] embedding: random-init ResNet-152, 8 synthetic 32x32 JPEGs",
        r"^  embed fp32: pipeline [\d,.]+ img/s, bare [\d,.]+ img/s, ratio [\d.]+, "
        r"pipeline's gpu busy",
        r"^  embed bf16: pipeline [\d,.]+ img/s, bare [\d,.]+ img/s, ratio [\d.]+, "
        r"pipeline's gpu busy",
        r"^\[B\] CAP fits: N=200 D=64 K=32 batch 64, 1 epoch\(s\), U = \d+ distinct rows",
        r"^  FLOP per fit = epochs × ⌈N/B⌉ × 16·U·D² = 1 × 4 × 16 × \d+ × 64² = ",
        r"^  fit highest: [\d.]+ s/fit, achieved [\d.e+-]+ TFLOP/s, matmul [\d.e+-]+ TFLOP/s",
        r"^  fit high: [\d.]+ s/fit, ",
        r"^  fit bf16: [\d.]+ s/fit, ",
        r"^\[start-up\] python -c \"import torch; torch.zeros\(1, device='\w+'\)\": [\d.]+ s",
        r"^\[C\] the paper's CIFAR-10 runs \(Tables 1-4\) through the workflow: 2 classes, "
        r"N=70 D=16, snakemake --cores 1; 28 CAP fits",
        r"^    evaluate +2 jobs +[\d.]+ s",
        r"^  start-up: [\d.]+ s of [\d.]+ s in the cap jobs \([\d.]+%\), [\d.]+ s per job",
        r"^  CAP fit in the jobs: [\d.]+ s mean per fit",
        r"^\[summary\] benchmark wall time [\d.]+ s",
        r"^  paper work: F = 1,410 CAP fits, I = 195,354 images in 36 embedding files, "
        r"J = 91 jobs \(55 evaluate \+ 36 embed\)",
        r"^  projected whole paper, as configured .*: T = F·t_fit \+ I/r_embed \+ J·t_start = "
        r"1,410 × [\d.]+ s \+ 195,354 / [\d,]+ img/s \+ 91 × [\d.]+ s = [\d,]+ s \([\d.]+ min\)",
        r"^  projected whole paper, fastest measured ",
        r"^  projected whole paper, the workflow's own fits \(part C\)",
        r"^  formula: T = F·t_fit \+ I/r_embed \+ J·t_start",
    ]
    for pattern in expected:
        assert re.search(pattern, text, re.MULTILINE), (pattern, text)
    if "(cpu)" in lines[0]:
        assert text.count("gpu busy: not sampled (no GPU)") == 7


def test_paper_work_is_what_the_plan_counts(time_gpu) -> None:
    config = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    work = time_gpu.paper_work(config)
    images = 60_000 + 60_000 + 70_000 + 5_354  # CIFAR-10, CIFAR-100, Fashion-MNIST, MVTec AD
    assert (work.fits, work.files, work.images, work.jobs) == (1410, 36, images, 55 + 36)
    total, formula = time_gpu.project_paper(work, 1.0, 1000.0, 5.0)
    assert total == pytest.approx(1410 + 195.354 + 91 * 5)
    assert formula.startswith("T = F·t_fit + I/r_embed + J·t_start = 1,410 × 1.00 s")


def test_fit_flop_counts_eight_projections_per_step(time_gpu) -> None:
    shape = time_gpu.PAPER
    assert time_gpu.fit_flop(shape, 2000.0) == 10 * 79 * 16 * 2000 * 2048**2  # ≈ 106 TFLOP


def test_random_neighbours_exclude_the_item_and_repeat_no_one(time_gpu) -> None:
    shape = time_gpu.TINY
    bank, index = time_gpu.paper_features(shape)
    assert bank.shape == (200, 64) and index.shape == (200, 32)
    assert not (index == np.arange(200)[:, None]).any()
    assert all(len(set(row)) == 32 for row in index.tolist())
    assert time_gpu.mean_distinct_rows(shape, index) > 150  # of 200: hardly any overlap
