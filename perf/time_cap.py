"""Speed and memory of CAP training and scoring on cached features.

Compares the detector's scorer (project the bank once per call, then gather each
query's projected neighbours: O(N·D² + n·K²·D)) with a straightforward one that
projects every test item's K neighbours separately (O(n·K·D²)), and checks both
give the same scores. Features are random: only the sizes matter here.

Default size runs in about a minute on 2 CPU cores; the paper's CIFAR size is
``--bank 5000 --epochs 10``.

    python perf/time_cap.py [--bank 1000] [--test 10000] [--epochs 1] ...
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cap import CAPDetector, CAPModel
from cap.detectors.search import knn_search
from cap.utils.torch_io import resolve_device


@dataclass
class Measurement:
    """Wall time and peak memory growth of one step."""

    seconds: float = 0.0  # wall-clock time
    peak_mib: float = 0.0  # peak memory above the step's start (CUDA: allocated tensors)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def measure(device: torch.device) -> Iterator[Measurement]:
    """Time a block and track its peak memory: CUDA allocator stats, or sampled RSS on CPU."""
    result = Measurement()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    else:
        baseline = _rss_bytes()
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.005):
                peak[0] = max(peak[0], _rss_bytes())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    start = time.perf_counter()
    try:
        yield result
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            peak_bytes = torch.cuda.max_memory_allocated(device)
        else:
            done.set()
            sampler.join()
            peak_bytes = max(peak[0], _rss_bytes())
        result.seconds = time.perf_counter() - start
        result.peak_mib = (peak_bytes - baseline) / 2**20


@torch.no_grad()
def per_sample_scores(
    model: CAPModel, bank: np.ndarray, X: np.ndarray, index: np.ndarray, batch: int = 64
) -> np.ndarray:
    """Straightforward eq. (8): every test item's K neighbours go through the head again."""
    device = next(model.parameters()).device
    scores = []
    for start in range(0, len(X), batch):
        z = torch.from_numpy(X[start : start + batch]).to(device)  # (B, D)
        neighbors = torch.from_numpy(bank[index[start : start + batch]]).to(device)  # (B, K, D)
        scores.append(model.anomaly_score(z, neighbors).cpu().numpy())
    return np.concatenate(scores)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fit and score once at the requested size; returns the measurements."""
    rng = np.random.default_rng(args.seed)
    features = lambda n: np.abs(rng.standard_normal((n, args.dim), dtype=np.float32))  # noqa: E731
    bank, test = features(args.bank), features(args.test)
    device = resolve_device(args.device)
    detector = CAPDetector(
        k=args.k, epochs=args.epochs, batch_size=args.batch_size, device=str(device), seed=args.seed
    )
    warm_up = CAPDetector(k=2, epochs=1, device=str(device)).fit(
        bank[:8]
    )  # one-time library set-up
    warm_up.anomaly_score(test[:8])
    results: dict[str, Any] = {"device": device}
    with measure(device) as results["search"]:
        _, train_index = knn_search(bank, k=args.k)
        _, test_index = knn_search(bank, test, k=args.k)
    with measure(device) as results["fit"]:
        detector.fit(bank, neighbors=train_index)
    with measure(device) as results["score"]:
        fast = detector.anomaly_score(test, neighbors=test_index)
    subset = slice(0, min(args.naive_test, args.test))
    model = copy.deepcopy(detector.model_).to(device)
    with measure(device) as results["naive"]:
        naive = per_sample_scores(model, bank, test[subset], test_index[subset])
    results["max_difference"] = float(np.abs(fast[subset] - naive).max())
    return results


def report(args: argparse.Namespace, results: dict[str, Any]) -> str:
    """The measurements as a small text table."""
    n_naive = min(args.naive_test, args.test)
    fit_rate = args.bank * args.epochs / results["fit"].seconds
    score_rate = args.test / results["score"].seconds
    naive_rate = n_naive / results["naive"].seconds
    rows: list[tuple[str, Measurement, str]] = [
        ("neighbour search (train + test)", results["search"], ""),
        ("fit", results["fit"], f"{fit_rate:,.0f} samples·epochs/s"),
        ("score: project bank once", results["score"], f"{score_rate:,.0f} items/s"),
        (f"score: per-sample ({n_naive:,} items)", results["naive"], f"{naive_rate:,.0f} items/s"),
    ]
    threads = f"{torch.get_num_threads()} torch threads" if results["device"].type == "cpu" else ""
    lines = [
        f"CAP benchmark: D={args.dim}, K={args.k}, bank {args.bank:,}, {args.epochs} epoch(s), "
        f"batch {args.batch_size}, {args.test:,} test items, device {results['device']} {threads}",
        f"{'step':<36}{'time (s)':>10}{'peak mem (MiB)':>16}  throughput",
    ]
    lines += [f"{name:<36}{m.seconds:>10.2f}{m.peak_mib:>16.0f}  {rate}" for name, m, rate in rows]
    lines.append(
        f"scoring speed-up over per-sample projection: {score_rate / naive_rate:.1f}x "
        f"(max |score difference| {results['max_difference']:.1e})"
    )
    lines.append(
        f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:,.0f} MiB"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    positive = _positive_int
    parser.add_argument("--bank", type=positive, default=1000, help="bank items N (paper: 5000)")
    parser.add_argument("--test", type=positive, default=10_000, help="test items scored")
    parser.add_argument("--naive-test", type=positive, default=1000,
                        help="test items for the per-sample scorer (it is slow)")  # fmt: skip
    parser.add_argument("--dim", type=positive, default=2048, help="feature dimension D")
    parser.add_argument("--k", type=positive, default=32, help="neighbours K")
    parser.add_argument("--epochs", type=positive, default=1, help="training epochs (paper: 10)")
    parser.add_argument("--batch-size", type=positive, default=64, help="training batch size")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random features and of CAP"
    )
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(report(args, run(args)))


if __name__ == "__main__":
    main()
