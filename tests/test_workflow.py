"""The Snakemake workflow: config validation, planning, a whole smoke run, and resuming."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cap.reporting.tables import read_table

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAP_SHARED_DIR", REPO.parent / "shared"))
SNAKEFILE = REPO / "workflow" / "Snakefile"
CIFAR_ZIP = SHARED / "data" / "cifar10-jpg.zip"
MOBILENET = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
FMNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist

needs_assets = pytest.mark.skipif(
    not (CIFAR_ZIP.exists() and MOBILENET.exists()),
    reason=f"the offline assets are not under {SHARED} (set CAP_SHARED_DIR)",
)


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's workflow with ``workdir`` as working directory."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir), "--workflow-profile", "none", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def smoke_config() -> dict:
    """The smoke config with absolute asset paths, runnable from any working directory."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "smoke.yaml").read_text())
    config["resources"]["cifar10-jpg"]["local"] = [str(CIFAR_ZIP)]
    config["resources"]["mobilenet-v2"]["local"] = [str(MOBILENET)]
    config["report"]["paper_results"] = str(REPO / "config" / "paper_results.yaml")
    if not FMNIST.is_dir():  # run the CIFAR-10 part alone where Debian's package is absent
        del config["datasets"]["fmnist"], config["resources"]["fashion-mnist"]
        config["tables"]["table1"]["datasets"].remove("fmnist")
    return config


def paper_config() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["report"]["paper_results"] = str(REPO / "config" / "paper_results.yaml")
    return config


# ---------------------------------------------------------------- planning and validation


def test_paper_config_plans_every_job_without_data(tmp_path):
    config = write_config(tmp_path / "config.yaml", paper_config())
    result = snakemake(tmp_path, "-n", "all", "--configfile", str(config))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    assert counts["embed"] == 2 * (3 + 15)  # train+test of 3 shared datasets, 15 MVTec categories
    assert counts["neighbors"] == 10 + 20 + 10 + 15
    assert counts["table"] == 4 and counts["report"] == 1


def test_one_table_plans_only_its_jobs(tmp_path):
    config = write_config(tmp_path / "config.yaml", paper_config())
    result = snakemake(tmp_path, "-n", "table3", "--configfile", str(config))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    counts = job_counts(output)
    assert set(counts) == {"fetch", "embed", "neighbors", "train", "score", "auroc", "table", "table3", "total"}
    models = [line.split("/") for line in output.split() if line.startswith("results/models/")]
    variants = {dataset: {parts[5] for parts in models if parts[2] == dataset} for dataset in ("cifar10", "mvtec")}
    # K=32 is CIFAR's default CAP run and K=4 MVTec's: both reuse the runs of variant "cap".
    assert variants["cifar10"] == {"cap", "k1", "k4", "k8", "k16", "k64"}
    assert variants["mvtec"] == {"cap", "k1", "k8", "k16", "k32", "k64"}
    assert "datasets/fmnist" not in output and "/fmnist/" not in output


def job_counts(output: str) -> dict[str, int]:
    """Parse snakemake's 'Job stats' table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    counts = {}
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda c: c["datasets"]["cifar10"].update(source="imagenet"), "source"),
        (lambda c: c["variants"]["k1"].update(k=-1), "k1"),
        (lambda c: c["variants"]["lam1"].update(lam="two"), "lam1"),
        (lambda c: c["variants"]["head_lr"].update(head="mlp"), "head_lr"),
        (lambda c: c["variants"]["cap"].update(epoch=3), "epoch"),
        (lambda c: c["tables"]["table1"]["datasets"].append("imagenet"), "tables.table1.datasets"),
        (lambda c: c["datasets"]["fmnist"].update(backbone="vit"), "datasets.fmnist.backbone"),
    ],
    ids=["unknown-dataset", "negative-k", "lambda-string", "unknown-head", "unknown-key",
         "table-unknown-dataset", "unknown-backbone"],
)
def test_invalid_config_fails_before_any_job_naming_the_key(tmp_path, edit, named):
    config = paper_config()
    edit(config)
    result = snakemake(tmp_path, "-n", "all", "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    assert result.returncode != 0
    assert named in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def test_lint_reports_nothing(tmp_path):
    config = write_config(tmp_path / "config.yaml", paper_config())
    result = snakemake(tmp_path, "--lint", "--configfile", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


# ---------------------------------------------------------------- running it


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One complete offline run of the smoke DAG."""
    workdir = tmp_path_factory.mktemp("smoke")
    config = write_config(workdir / "smoke.yaml", smoke_config())
    result = snakemake(workdir, "--cores", "2", "all", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir, config, result


def auroc_records(workdir: Path) -> dict[str, float]:
    return {
        str(path.relative_to(workdir)): json.loads(path.read_text())["auroc"]
        for path in sorted((workdir / "results" / "auroc").rglob("*.json"))
    }


@needs_assets
def test_smoke_run_executes_every_rule_and_writes_every_output(smoke_run):
    workdir, _, result = smoke_run
    log = result.stdout + result.stderr
    for rule in ("fetch", "embed", "neighbors", "train", "score", "auroc", "aggregate", "table",
                 "figure_attention", "figure_score_curves", "figure_anomaly_maps", "report"):
        assert f"rule {rule}:" in log or f"localrule {rule}:" in log, rule
    records = auroc_records(workdir)
    # CIFAR-10: 2 classes × (cap, no_adaptation, dn2, k4, lam0); Fashion-MNIST: 1 class × table 1
    expected = 10 + (3 if FMNIST.is_dir() else 0)
    assert len(records) == expected
    assert all(0.0 <= value <= 1.0 for value in records.values())
    summary = (workdir / "results" / "tables" / "auroc_summary.csv").read_text().splitlines()
    assert len(summary) == 1 + expected
    for table in ("table1", "table3"):
        for suffix in (".csv", ".md", ".tex", "_per_class.csv"):
            assert (workdir / "results" / "tables" / f"{table}{suffix}").stat().st_size > 0
        cells = read_table(workdir / "results" / "tables" / f"{table}.csv")
        computed = cells[cells["kind"] == "computed"]["auroc_pct"]
        assert len(computed) > 0 and computed.notna().all()
        assert computed.between(30.0, 100.0).all(), computed  # real features: far from chance
    report = (workdir / "results" / "report" / "reproduction.md").read_text()
    assert "### table1" in report and "### table3" in report
    assert not re.search(r"\bnan\b", report, flags=re.IGNORECASE)
    pngs = list((workdir / "results" / "figures").rglob("*.png"))
    assert len(pngs) == 3
    assert all((workdir / "results" / "logs").rglob("*.log"))
    assert list((workdir / "results" / "benchmarks" / "train").rglob("*.tsv"))


@needs_assets
def test_rerun_after_finished_run_does_nothing(smoke_run):
    workdir, config, _ = smoke_run
    result = snakemake(workdir, "-n", "all", "--configfile", str(config))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@needs_assets
def test_killed_run_resumes_with_the_same_aurocs(smoke_run, tmp_path):
    reference_dir, _, _ = smoke_run
    config = write_config(tmp_path / "smoke.yaml", smoke_config())
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path),
        "--workflow-profile", "none", "--cores", "2", "all", "--configfile", str(config),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "results" / "models").rglob("*.pt")):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "results" / "report" / "reproduction.md").exists()

    assert snakemake(tmp_path, "--unlock", "--configfile", str(config)).returncode == 0
    result = snakemake(tmp_path, "--cores", "2", "all", "--configfile", str(config), "--rerun-incomplete")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert auroc_records(tmp_path) == auroc_records(reference_dir)


@needs_assets
def test_snakemake_html_report_renders_without_errors(smoke_run):
    workdir, config, _ = smoke_run
    result = snakemake(workdir, "--report", "report.html", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ERROR" not in result.stdout + result.stderr
    html = (workdir / "report.html").read_text(errors="replace")
    assert "reproduction.md" in html and "Table" in html
