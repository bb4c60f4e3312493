"""The whole workflow on synthetic paper-shaped features: wall time, job time, start-up share,
and CAP's training time against its arithmetic floor on this machine.

Features are random vectors around one centre per class, shaped like CIFAR-10's
(``--per-class`` training and ``--test-per-class`` test items for each of 10 classes,
``--dim`` dimensions), written straight into the embedding files, so that the run
measures everything after the backbone: neighbours, the runs of Tables 2–4 (CAP
variants and the no-adaptation baseline) with ``--epochs`` epochs, the tables and the
report. The paper's shape is ``--per-class 5000 --test-per-class 1000 --dim 2048``
(50,000 × 2,048 training features): hours of CAP training on a laptop CPU, minutes on a
GPU. The default is a tenth of the bank.

    python benchmarks/bench_workflow.py [--per-class 500] [--epochs 1] [--cores 2]

It prints:

- wall time, and the sum of every job's time from Snakemake's benchmark files;
- start-up share: over the jobs of the ``cap`` command, the seconds from process start
  to their first piece of work (the ``start-up`` line of their logs) against their time;
- CAP's training time against its FLOP floor: each epoch projects every bank item at
  least once through each of the model's D × D matrices, forward and backward
  (3 × 2·D² FLOPs per matrix and item), at the matmul rate measured here;
- the size of ``results/`` and each rule's peak memory (Snakemake's ``max_rss``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cap.benchmark import layout
from cap.benchmark.embeddings import Embeddings, save_embeddings
from cap.benchmark.records import read_runs_table

REPO = Path(__file__).resolve().parents[1]
CLASSES = 10
#: Runs of Tables 2-4 on one dataset (the paper's variants).
VARIANTS = {
    "cap": {"method": "cap"},
    "no_adaptation": {"method": "no_adaptation"},
    "head_lrl": {"method": "cap", "head": "linear_relu_linear"},
    "head_lr": {"method": "cap", "head": "linear_relu"},
    "no_attention": {"method": "cap", "attention": False},
    **{f"k{k}": {"method": "cap", "k": k} for k in (1, 4, 8, 16, 64)},
    **{f"lam{lam:g}": {"method": "cap", "lam": lam} for lam in (0.0, 0.1, 1.0, 10.0, 100.0)},
}
TABLES = {
    "table2": ["head_lrl", "head_lr", "cap", "no_attention"],
    "table3": ["k1", "k4", "k8", "k16", "cap", "k64"],
    "table4": ["lam0", "lam0.1", "lam1", "cap", "lam10", "lam100", "no_adaptation"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=500, help="training items per class")
    parser.add_argument("--test-per-class", type=int, default=1000, help="test items per class")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--classes", type=int, default=CLASSES, help="normal classes run")
    parser.add_argument(
        "--tables", nargs="+", choices=sorted(TABLES), default=sorted(TABLES), help="tables run"
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep the run here (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        config = prepare(workdir, args)
        start = time.perf_counter()
        command = [
            sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(config), "--cores", str(args.cores),
            "--workflow-profile", "none", "all", "--rerun-triggers", "mtime",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(result.stderr[-5000:])
        report(workdir, wall, args)


def prepare(workdir: Path, args: argparse.Namespace) -> Path:
    """Synthetic embeddings in place of the `embed` jobs' outputs, and the config."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CLASSES, args.dim)).astype(np.float32)
    for split, per_class in (("train", args.per_class), ("test", args.test_per_class)):
        labels = np.tile(np.arange(CLASSES), per_class)  # interleaved, as in CIFAR's files
        features = centres[labels] + 2.0 * rng.normal(size=(len(labels), args.dim)).astype(
            np.float32
        )
        save_embeddings(
            workdir
            / layout.EMBEDDINGS.format(
                dataset="synthetic", backbone="synthetic", subset="all", split=split
            ),
            Embeddings(
                features=np.maximum(features, 0.0),  # non-negative, like pooled ReLU features
                labels=labels,
                ids=[f"{split}/{i}" for i in range(len(labels))],
                class_names=[f"class{c}" for c in range(CLASSES)],
                attrs={"backbone": "tflite", "weights": "synthetic"},
            ),
        )
    (workdir / "resources" / "synthetic").mkdir(parents=True, exist_ok=True)
    for path in (workdir / "results" / "embeddings").rglob("*.h5"):
        path.touch()  # newer than the resource: no embed job
    config = {
        "offline": True,
        "seeds": [0],
        "resources": {
            "synthetic": {"file": "synthetic", "local": [str(workdir / "resources" / "synthetic")]}
        },
        "backbones": {"synthetic": {"model": "tflite", "resource": None}},
        "datasets": {
            "synthetic": {
                "source": "imagefolder",
                "resource": "synthetic",
                "backbone": "synthetic",
                "classes": list(range(args.classes)),
            }
        },
        "methods": {
            "cap": {
                "k": 32,
                "lam": 2.0,
                "epochs": args.epochs,
                "lr": 5.0e-4,
                "batch_size": 64,
                "lr_decay": 0.9,
                "head": "linear",
                "attention": True,
                "constraint": "mse",
                "init": "xavier",
            },
            "no_adaptation": {"k": 32},
        },
        "variants": {name: VARIANTS[name] for table in args.tables for name in TABLES[table]},
        "tables": {
            name: {
                "title": name,
                "layout": "variants_as_columns",
                "datasets": ["synthetic"],
                "entries": [{"label": variant, "variant": variant} for variant in variants],
            }
            for name, variants in TABLES.items()
            if name in args.tables
        },
        "figures": {},
        "report": {"paper_results": str(REPO / "config" / "paper_results.yaml")},
    }
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def report(workdir: Path, wall: float, args: argparse.Namespace) -> None:
    jobs = job_times(workdir)
    startup = startup_times(workdir)
    cap_jobs = jobs[jobs["job"].isin(startup.index)]
    runs = read_runs_table(workdir / layout.RUNS_TABLE)
    cap = runs[runs["method"] == "cap"]
    floor = sum(flop_floor(row, args.dim) for row in cap.itertuples())
    rate = matmul_rate(args.dim)
    fit = cap["fit_s"].sum()
    in_cap_jobs = cap_jobs["s"].sum()
    lines = [
        f"shape: {CLASSES} classes x {args.per_class} train / {args.test_per_class} test, "
        f"D = {args.dim}; {args.classes} normal class(es) run",
        f"runs: {len(runs)}, of which {len(cap)} CAP fits of {args.epochs} epoch(s)",
        f"jobs: {len(jobs)}; wall {wall:.1f} s on {args.cores} cores; "
        f"job time {jobs['s'].sum():.1f} s",
        *(
            f"  {rule:<10} {len(group):>4} jobs {group['s'].sum():>9.1f} s"
            for rule, group in jobs.groupby("rule")
        ),
        f"start-up: {startup.sum():.1f} s of {in_cap_jobs:.1f} s in the cap jobs "
        f"({100 * startup.sum() / in_cap_jobs:.1f}%)",
        f"CAP training: {fit:.1f} s; FLOP floor {floor / 1e12:.2f} TFLOP "
        f"at {rate / 1e9:.0f} GFLOP/s = {floor / rate:.1f} s "
        f"({fit / (floor / rate):.1f}x the floor)",
    ]
    size = sum(f.stat().st_size for f in (workdir / "results").rglob("*") if f.is_file())
    embeddings = sum(f.stat().st_size for f in (workdir / "results" / "embeddings").rglob("*.h5"))
    lines.append(
        f"results/: {size / 2**20:.0f} MiB, "
        f"of which the synthetic embeddings {embeddings / 2**20:.0f} MiB"
    )
    lines.append(
        "peak memory (max RSS, MiB) per rule: "
        + ", ".join(
            f"{rule} {rss:.0f}" for rule, rss in jobs.groupby("rule")["max_rss"].max().items()
        )
    )
    print("\n".join(lines))


def job_times(workdir: Path) -> pd.DataFrame:
    """One row per job: its rule, its id (the benchmark file's path) and its seconds."""
    rows = []
    for path in sorted((workdir / "results" / "benchmarks").rglob("*.tsv")):
        relative = path.relative_to(workdir / "results" / "benchmarks")
        measured = pd.read_csv(path, sep="\t").iloc[0]
        rows.append({
            "rule": relative.parts[0].removesuffix(".tsv"),
            "job": str(relative.with_suffix("")),
            "s": float(measured["s"]),
            "max_rss": pd.to_numeric(measured["max_rss"], errors="coerce"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def startup_times(workdir: Path) -> pd.Series:
    """Each cap job's start-up seconds, from the line `cap.cli.log_startup` writes to its log."""
    seconds = {}
    for path in (workdir / "results" / "logs").rglob("*.log"):
        found = re.search(r"start-up ([\d.]+) s", path.read_text())
        if found:
            seconds[str(path.relative_to(workdir / "results" / "logs").with_suffix(""))] = float(
                found[1]
            )
    return pd.Series(seconds, dtype=float)


def flop_floor(run: object, dim: int) -> float:
    """Arithmetic a fit cannot avoid: every bank item through every D × D matrix of the model
    (head, and W_Q, W_K with attention), forward and backward, each epoch."""
    matrices = (2 if run.head == "linear_relu_linear" else 1) + (2 if run.attention else 0)
    return run.epochs * run.n_train * matrices * 3 * 2 * dim**2


def matmul_rate(dim: int, rows: int = 2048) -> float:
    """FLOP/s of a (rows, D) @ (D, D) float32 matmul here, best of five, one thread as the jobs."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(rows, dim), torch.randn(dim, dim)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * rows * dim * dim / best


if __name__ == "__main__":
    main()
