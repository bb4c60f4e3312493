"""Fit and score seconds of PyOD's detectors on pretrained-feature sizes, beside ours.

The benchmark's size: a bank of N = 5,000 normal features (one CIFAR-10 class) of
D = 1,280, and 10,000 queries (the CIFAR-10 test set). Features are a low-rank
Gaussian mixture (normal clusters; queries half from them, half from held-out
clusters), so the AUROC column is only a sanity check, not a ranking of methods.

Each detector runs in its own process, on one thread by default, after a warm-up
on tiny data (imports and numba's compilation are not timed); one that takes over
``--limit`` seconds is stopped and reported as too slow. The default list takes a
few minutes on 2 CPU cores.

    python perf/time_pyod.py [--bank 5000] [--dim 1280] [--test 10000] \
        [--limit 120] [--threads 1] [--methods ECOD IForest dn2 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: PyOD detectors timed by default (class names), then ours.
PYOD_DEFAULT = [
    "ECOD", "COPOD", "HBOS", "IForest", "LODA", "PCA", "GMM", "CBLOF", "INNE",
    "KNN", "LOF", "OCSVM", "AutoEncoder",
]  # fmt: skip
OURS = {
    "mahalanobis": ("mahalanobis", {}),
    "dn2": ("dn2", {"k": 2}),
    "dn2_cosine": ("dn2", {"k": 2, "normalize": True}),
}


def make_features(
    n_bank: int, n_test: int, dim: int, *, rank: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bank (N, D), queries (n, D) float32 and query labels (n,), 1 = anomaly: a mixture of
    10 normal and 5 anomalous Gaussian clusters in a rank-``rank`` subspace, plus noise."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, dim)) / np.sqrt(rank)  # (rank, D)
    centres = 2.0 * rng.normal(size=(15, rank))
    normal, anomalous = np.arange(10), np.arange(10, 15)

    def sample(pool: np.ndarray, n: int) -> np.ndarray:
        latent = centres[rng.choice(pool, size=n)] + rng.normal(size=(n, rank))  # (n, rank)
        return (latent @ basis + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)

    n_anomalous = n_test // 2
    test = np.concatenate([sample(normal, n_test - n_anomalous), sample(anomalous, n_anomalous)])
    is_anomaly = np.r_[np.zeros(n_test - n_anomalous, int), np.ones(n_anomalous, int)]
    return sample(normal, n_bank), test, is_anomaly


def build(name: str):
    """The detector timed under ``name``: one of :data:`OURS`, else a PyOD class name."""
    from cap.detectors import make_detector

    method, settings = OURS.get(name, ("pyod", {"model": name}))
    return make_detector(method, **settings)


def run_one(name: str, data: Path, threads: int) -> None:
    """Child process: warm up, then time fit and scoring; one JSON line per step."""
    import faiss
    import torch
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    bank, test, is_anomaly = (np.load(data / f"{part}.npy") for part in ("bank", "test", "y"))
    tiny = np.random.default_rng(1).normal(size=(64, 8)).astype(np.float32)
    build(name).fit(tiny).anomaly_score(tiny)  # imports, numba compilation
    detector = build(name)
    start = time.perf_counter()
    detector.fit(bank)
    print(json.dumps({"fit_s": time.perf_counter() - start}), flush=True)
    start = time.perf_counter()
    scores = detector.anomaly_score(test)
    seconds = time.perf_counter() - start
    print(json.dumps({"score_s": seconds, "auroc": roc_auc_score(is_anomaly, scores)}), flush=True)


def time_in_child(name: str, data: Path, threads: int, limit: float) -> dict[str, object]:
    """Run :func:`run_one` in a fresh process, stopped after ``limit`` seconds."""
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMBA_NUM_THREADS"):  # fmt: skip
        env[variable] = str(threads)
    command = [sys.executable, __file__, "--child", name, "--data", str(data),
               "--threads", str(threads)]  # fmt: skip
    result: dict[str, object] = {}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=limit)
        output, failed = done.stdout, done.returncode != 0
        if failed:
            result["status"] = "error: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    except subprocess.TimeoutExpired as timeout:
        output = timeout.stdout or ""
        output = output.decode() if isinstance(output, bytes) else output
        result["status"] = f"too slow (>{limit:g} s)"
    for line in output.splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", type=int, default=5000, help="bank items N")
    parser.add_argument("--dim", type=int, default=1280, help="feature dimension D")
    parser.add_argument("--test", type=int, default=10000, help="queries n")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per detector")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument(
        "--methods", nargs="+", default=[*PYOD_DEFAULT, *OURS], help="PyOD names or ours"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.child, args.data, args.threads)
        return

    print(f"bank N={args.bank}, D={args.dim}, {args.test} queries, {args.threads} thread(s), "
          f"limit {args.limit:g} s per detector")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        bank, test, is_anomaly = make_features(args.bank, args.test, args.dim)
        for part, array in (("bank", bank), ("test", test), ("y", is_anomaly)):
            np.save(data / f"{part}.npy", array)
        for name in args.methods:
            result = time_in_child(name, data, args.threads, args.limit)
            row = (
                name,
                f"{result['fit_s']:.2f}" if "fit_s" in result else "-",
                f"{result['score_s']:.2f}" if "score_s" in result else "-",
                f"{result['auroc']:.3f}" if "auroc" in result else "-",
                str(result.get("status", "")),
            )
            print("  ".join(row), flush=True)
            rows.append(row)
    from tabulate import tabulate

    print()
    print(tabulate(rows, headers=["method", "fit s", "score s", "AUROC", "note"]))


if __name__ == "__main__":
    main()
