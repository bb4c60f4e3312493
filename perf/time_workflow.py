"""The whole workflow on synthetic paper-shaped features: wall time, job time, start-up share,
and CAP's training time against its arithmetic floor on this machine.

The runs are the paper's own on CIFAR-10: the variants, settings and seeds that
``config/config.yaml``'s tables (``--tables``) need on CIFAR-10, on ``--classes`` normal
classes. The features stand in for the backbone's: ``--per-class`` training and
``--test-per-class`` test items for each of 10 classes, ``--dim`` dimensions, written
straight into the embedding files, so that the run measures everything after the
backbone: neighbours, the CAP fits and baselines, the tables and the report. They are
non-negative Gaussian noise around one centre per class, at twice the centres' scale:
the nearest neighbours of an item are then nearly random, so a CAP step projects as many
distinct bank rows as on real features (≈ (1 + K)·B at B = 64); blob-tight features
would share far more. The paper's shape is
``--per-class 5000 --test-per-class 1000 --dim 2048`` (hours of CAP training on a laptop
CPU, minutes on a GPU: ``perf/time_gpu.py`` runs it there); the default is a tenth
of the bank, one epoch and one seed, Tables 2–4.

    python perf/time_workflow.py [--per-class 500] [--epochs 1] [--cores 2]

It prints:

- wall time, and every rule's job count and time from Snakemake's benchmark files;
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cap.evaluation.embeddings import Embeddings, save_embeddings
from cap.evaluation.records import read_runs_table
from cap.workflow import layout, registry

REPO = Path(__file__).resolve().parents[1]
PAPER_CONFIG = REPO / "config" / "config.yaml"
CLASSES = 10


@dataclass(frozen=True)
class SyntheticShape:
    """The features standing in for CIFAR-10's embeddings."""

    per_class: int  # training items per class (the bank of a normal class)
    test_per_class: int  # test items per class
    dim: int  # D


def paper_cifar10_config(
    workdir: Path,
    *,
    tables: Sequence[str],
    classes: int,
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """``config/config.yaml`` cut to CIFAR-10's runs of ``tables`` on ``classes`` normal
    classes, over synthetic embeddings (no figures, no claims); ``epochs`` and ``seeds``
    replace the paper's where given."""
    paper = yaml.safe_load(PAPER_CONFIG.read_text())
    chosen = {name: paper["tables"][name] for name in tables}
    variants = {e["variant"] for table in chosen.values() for e in table["entries"]}
    methods = paper.get("methods", {})
    if epochs is not None:
        methods = {**methods, "cap": {**methods.get("cap", {}), "epochs": epochs}}
    return {
        "offline": True,
        "seeds": list(paper["seeds"] if seeds is None else seeds),
        "resources": {
            "synthetic": {"file": "synthetic", "local": [str(workdir / "resources" / "synthetic")]}
        },
        "backbones": {"synthetic": {"model": "tflite", "resource": None}},
        "datasets": {
            "cifar10": {
                "source": "imagefolder",
                "resource": "synthetic",
                "backbone": "synthetic",
                "classes": list(range(classes)),
                "settings": paper["datasets"]["cifar10"].get("settings", {}),
            }
        },
        "methods": methods,
        "variants": {name: spec for name, spec in paper["variants"].items() if name in variants},
        "tables": {
            name: {**table, "datasets": ["cifar10"], "paper": None, "reported_rows": False}
            for name, table in chosen.items()
        },
        "figures": {},
        "report": {"paper_results": str(REPO / "config" / "paper_results.yaml")},
    }


def write_synthetic_embeddings(workdir: Path, shape: SyntheticShape) -> None:
    """Train and test embedding files of the ``cifar10`` dataset of
    :func:`paper_cifar10_config`, newer than its resource (so no `embed` job runs)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CLASSES, shape.dim)).astype(np.float32)
    for split, per_class in (("train", shape.per_class), ("test", shape.test_per_class)):
        labels = np.tile(np.arange(CLASSES), per_class)  # interleaved, as in CIFAR's files
        noise = rng.normal(size=(len(labels), shape.dim)).astype(np.float32)
        features = centres[labels] + 2.0 * noise  # nearly random neighbours (module doc)
        path = layout.EMBEDDINGS.format(
            dataset="cifar10", backbone="synthetic", subset="all", split=split
        )
        save_embeddings(
            workdir / path,
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
        path.touch()


def run_workflow(workdir: Path, config: dict[str, Any], cores: int) -> float:
    """Run ``snakemake all`` on ``config`` in ``workdir``; its wall seconds."""
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(path), "--cores", str(cores),
        "--workflow-profile", "none", "all",
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stderr[-5000:])
    return time.perf_counter() - start


def job_times(workdir: Path) -> pd.DataFrame:
    """One row per job: its rule, its log's id, its seconds and peak memory."""
    rows = []
    for rule, _, path in registry.find_job_files("timings", workdir):
        measured = pd.read_csv(path, sep="\t").iloc[0]
        rows.append({
            "rule": rule,
            "job": str(path.relative_to(workdir / "results" / "timings").with_suffix("")),
            "s": float(measured["s"]),
            "max_rss": pd.to_numeric(measured["max_rss"], errors="coerce"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def startup_times(workdir: Path) -> pd.Series:
    """Each cap job's start-up seconds, from the line `log_startup` writes to its log."""
    seconds = {}
    for _, _, path in registry.find_job_files("logs", workdir):
        found = re.search(r"start-up ([\d.]+) s", path.read_text())
        if found:
            job = str(path.relative_to(workdir / "results" / "logs").with_suffix(""))
            seconds[job] = float(found[1])
    return pd.Series(seconds, dtype=float)


def workflow_summary(workdir: Path, jobs: pd.DataFrame, wall: float, cores: int) -> list[str]:
    """Wall and job time per rule (``jobs``: :func:`job_times`), and the start-up share of
    the cap jobs."""
    startup = startup_times(workdir)
    in_cap_jobs = jobs.loc[jobs["job"].isin(startup.index), "s"].sum()
    return [
        f"jobs: {len(jobs)}; wall {wall:.1f} s on {cores} cores; job time {jobs['s'].sum():.1f} s",
        *(
            f"  {rule:<12} {len(group):>4} jobs {group['s'].sum():>9.1f} s"
            for rule, group in jobs.groupby("rule")
        ),
        f"start-up: {startup.sum():.1f} s of {in_cap_jobs:.1f} s in the cap jobs "
        f"({100 * startup.sum() / in_cap_jobs:.1f}%), {startup.mean():.2f} s per job",
    ]


def flop_floor(run: Any, dim: int) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=500, help="training items per class")
    parser.add_argument("--test-per-class", type=int, default=1000, help="test items per class")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--classes", type=int, default=CLASSES, help="normal classes run")
    parser.add_argument("--tables", nargs="+", default=["table2", "table3", "table4"])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep the run here (default: a temp dir)")
    args = parser.parse_args()

    shape = SyntheticShape(args.per_class, args.test_per_class, args.dim)
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        write_synthetic_embeddings(workdir, shape)
        config = paper_cifar10_config(
            workdir, tables=args.tables, classes=args.classes, epochs=args.epochs, seeds=args.seeds
        )
        wall = run_workflow(workdir, config, args.cores)
        runs = read_runs_table(workdir / layout.RUNS_TABLE)
        cap = runs[runs["method"] == "cap"]
        floor = sum(flop_floor(row, args.dim) for row in cap.itertuples())
        rate = matmul_rate(args.dim)
        fit = cap["fit_s"].sum()
        jobs = job_times(workdir)
        size = sum(f.stat().st_size for f in (workdir / "results").rglob("*") if f.is_file())
        embeddings = sum(
            f.stat().st_size for f in (workdir / "results" / "embeddings").rglob("*.h5")
        )
        lines = [
            f"shape: {CLASSES} classes x {args.per_class} train / {args.test_per_class} test, "
            f"D = {args.dim}; {args.classes} normal class(es) run",
            f"runs: {len(runs)}, of which {len(cap)} CAP fits of {args.epochs} epoch(s)",
            *workflow_summary(workdir, jobs, wall, args.cores),
            f"CAP training: {fit:.1f} s; FLOP floor {floor / 1e12:.2f} TFLOP "
            f"at {rate / 1e9:.0f} GFLOP/s = {floor / rate:.1f} s "
            f"({fit / (floor / rate):.1f}x the floor)",
            f"results/: {size / 2**20:.0f} MiB, "
            f"of which the synthetic embeddings {embeddings / 2**20:.0f} MiB",
            "peak memory (max RSS, MiB) per rule: "
            + ", ".join(
                f"{rule} {rss:.0f}" for rule, rss in jobs.groupby("rule")["max_rss"].max().items()
            ),
        ]
        print("\n".join(lines))


if __name__ == "__main__":
    main()
