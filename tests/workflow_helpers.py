"""Running the workflow from the tests: snakemake on a working directory, the smoke config
and a run's AUROC records, shared by the local workflow tests and the cluster tests, which
compare their runs; a config validated as the workflow does it; one `cap` step run on a
job's spec file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from assets import CIFAR10_ZIP, DEBIAN_FMNIST, MOBILENET, REPO

from cap.cli import build_parser
from cap.evaluation.jobs import write_spec
from cap.evaluation.records import read_runs

SNAKEFILE = REPO / "workflow" / "Snakefile"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def snakemake_command(workdir: Path, *args: str, profile: str = "none") -> list[str]:
    """The snakemake command line of the repository's workflow in ``workdir``."""
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir), "--workflow-profile", profile, *args,
    ]  # fmt: skip


def snakemake(
    workdir: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's workflow with ``workdir`` as working directory."""
    command = snakemake_command(workdir, *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def validated(config: dict) -> dict:
    """``config`` validated as the workflow does it (defaults filled in)."""
    from cap.workflow.schema import validated as validated_config

    return validated_config(config)


def step_argv(step: str, job: Any, folder: Path, *options: str) -> list[str]:
    """The arguments of ``cap <step>`` on ``job``, its spec written to ``folder/<step>.json``."""
    spec = folder / f"{step}.json"
    write_spec(spec, job)
    return [step, str(spec), *options]


def run_step(step: str, job: Any, folder: Path, *options: str) -> None:
    """Run ``cap <step>`` on ``job`` in this process, its errors raised (:func:`cap.cli.main`
    on :func:`step_argv` gives the exit status instead)."""
    args = build_parser().parse_args(step_argv(step, job, folder, *options))
    args.handler(args)


def smoke_config() -> dict:
    """The smoke config with absolute asset paths, runnable from any working directory."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "smoke.yaml").read_text())
    config["resources"]["cifar10-jpg"]["local"] = [str(CIFAR10_ZIP)]
    config["resources"]["mobilenet-v2"]["local"] = [str(MOBILENET)]
    config["report"]["paper_results"] = str(REPO / "config" / "paper_results.yaml")
    if not DEBIAN_FMNIST.is_dir():  # run the CIFAR-10 part alone where Debian's package is absent
        del config["datasets"]["fmnist"], config["resources"]["fashion-mnist"]
        config["tables"]["table1"]["datasets"].remove("fmnist")
    return config


def auroc_records(workdir: Path) -> dict[tuple[str, ...], float]:
    """(dataset, cls, setting, seed) → AUROC, from every batch of a run."""
    return {
        (run["dataset"], run["cls"], run["setting"], str(run["seed"])): run["auroc"]
        for run in read_runs(sorted((workdir / "results" / "runs").rglob("*.json")))
    }
