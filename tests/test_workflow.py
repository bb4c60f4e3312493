"""The Snakemake workflow: config validation, planning, a whole smoke run, and resuming."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from assets import DEBIAN_FMNIST, MOBILENET, REPO, needs_offline_assets
from workflow_helpers import (
    auroc_records,
    smoke_config,
    snakemake,
    snakemake_command,
    validated,
    write_config,
)

from cap.evaluation.records import read_runs_table
from cap.reporting.tables import read_table
from cap.workflow import Plan, layout, registry


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
    assert counts["evaluate"] == 10 + 20 + 10  # one per class
    assert counts["localize"] == 15  # MVTec's classes: evaluate with anomaly maps
    assert counts["table"] == 4 and counts["claims"] == 1 and counts["report"] == 1
    for step in registry.SPEC_STEPS:  # every job of a `cap` step reads its spec file
        twins = counts.get("localize", 0) if step == "evaluate" else 0
        assert counts[f"spec_{step}"] == counts[step] + twins, step


def test_one_table_plans_only_its_classes_jobs(tmp_path):
    config = write_config(tmp_path / "config.yaml", paper_config())
    result = snakemake(tmp_path, "-n", "table3", "--configfile", str(config))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    counts = job_counts(output)
    # the two kept models (the figures' runs of variant cap) are trained by `train`
    steps = {"fetch", "embed", "neighbors", "train", "evaluate"}
    assert set(counts) == {
        *steps, *(f"spec_{s}" for s in steps), "localize", "table", "table3", "total"
    }  # fmt: skip
    batches = set(re.findall(r"results/runs/(\w+)/[^/]+/([^/]+)/all\.json", output))
    assert {d for d, _ in batches} == {"cifar10", "cifar100", "mvtec"}  # not Fashion-MNIST
    assert len(batches) == 10 + 20 + 15
    assert "/fmnist/" not in output


def job_counts(output: str) -> dict[str, int]:
    """Parse snakemake's 'Job stats' table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    counts = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


# One fault of each kind that stops planning, through Snakemake (each kind's every case is
# a unit test: tests/test_settings.py the schema, tests/test_plan.py references and names).
@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda c: c["variants"]["k1"].update(k=-1), "variants.k1.k"),
        (lambda c: c["tables"]["table1"]["datasets"].append("imagenet"), "tables.table1.datasets"),
        (
            lambda c: c["tables"].update(leaderboard=c["tables"]["table1"]),
            "tables.leaderboard: 'leaderboard' is taken by the workflow",
        ),
    ],
    ids=["schema", "reference", "name"],
)
def test_invalid_config_fails_before_any_job_naming_the_key(tmp_path, edit, named):
    config = paper_config()
    edit(config)
    result = snakemake(
        tmp_path, "-n", "all", "--configfile", str(write_config(tmp_path / "c.yaml", config))
    )
    assert result.returncode != 0
    assert named in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def test_lint_reports_nothing(tmp_path):
    config = write_config(tmp_path / "config.yaml", paper_config())
    result = snakemake(tmp_path, "--lint", "--configfile", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_gpu_jobs_take_a_gpu_slot_only_where_a_gpu_is_visible(tmp_path):
    config = write_config(tmp_path / "config.yaml", paper_config())
    fake_gpu = tmp_path / "bin"
    fake_gpu.mkdir()
    (fake_gpu / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake_gpu / "nvidia-smi").chmod(0o755)
    gpu_env = {**os.environ, "PATH": f"{fake_gpu}:{os.environ['PATH']}"}
    dry_runs = {}
    for env, has_gpu in ((gpu_env, True), (None, False)):
        result = snakemake(tmp_path, "-n", "table1", "--configfile", str(config), env=env)
        assert result.returncode == 0, result.stderr
        embed_job = result.stdout.split("rule embed:")[1].split("\n\n")[0]
        assert ("gpu=1" in embed_job) == has_gpu, embed_job
        dry_runs[has_gpu] = result
    # a batch that trains nothing never waits for the GPU; one that trains takes it
    baselines = paper_config()
    table1 = baselines["tables"]["table1"]
    table1["entries"] = [entry for entry in table1["entries"] if entry["variant"] != "cap"]
    baselines["tables"], baselines["figures"] = {"table1": table1}, {}
    path = write_config(tmp_path / "c.yaml", baselines)
    baselines_run = snakemake(tmp_path, "-n", "table1", "--configfile", str(path), env=gpu_env)
    for result, slots in ((baselines_run, "gpu=0"), (dry_runs[True], "gpu=1")):
        assert result.returncode == 0, result.stderr
        evaluate_jobs = [job.split("\n\n")[0] for job in result.stdout.split("rule evaluate:")[1:]]
        assert evaluate_jobs and all(slots in job for job in evaluate_jobs), slots
    profile = yaml.safe_load(
        (REPO / "workflow" / "profiles" / "default" / "config.yaml").read_text()
    )
    assert profile["resources"] == ["gpu=1"]  # one GPU job at a time on a one-GPU machine


# ---------------------------------------------------------------- running it


@needs_offline_assets
def test_smoke_run_executes_every_rule_and_writes_every_output(smoke_run):
    workdir, _, result = smoke_run
    log = result.stdout + result.stderr
    for rule in (*LOGGED_RULES, *(f"spec_{step}" for step in registry.SPEC_STEPS)):
        assert f"rule {rule}:" in log or f"localrule {rule}:" in log, rule
    records = auroc_records(workdir)
    # CIFAR-10: 2 classes × (cap × 2 seeds, no_adaptation, dn2, k4), lam0 on class 0 (the curves);
    # Fashion-MNIST: 1 class × table 1 (cap × 2 seeds, no_adaptation, dn2)
    expected = 11 + (4 if DEBIAN_FMNIST.is_dir() else 0)
    assert len(records) == expected
    assert all(0.0 <= value <= 1.0 for value in records.values())
    runs = read_runs_table(workdir / layout.RUNS_TABLE)
    assert len(runs) == expected and runs["class_name"].notna().all()
    assert set(runs.loc[runs["dataset"] == "cifar10", "class_name"]) == {"airplane", "automobile"}
    per_class = pd.read_csv(workdir / "results" / "tables" / "table1_per_class.csv")
    assert per_class["class_name"].notna().all()  # was always empty
    assert len(list((workdir / "results" / "models").rglob("*.pt"))) == 1  # the figures' run only
    for table in ("table1", "table3"):
        for suffix in (".csv", ".md", ".tex", "_per_class.csv"):
            assert (workdir / "results" / "tables" / f"{table}{suffix}").stat().st_size > 0
        cells = read_table(workdir / "results" / "tables" / f"{table}.csv")
        computed = cells[cells["kind"] == "computed"]["value_pct"]
        assert len(computed) > 0 and computed.notna().all()
        assert computed.between(30.0, 100.0).all(), computed  # real features: far from chance
    report = (workdir / "results" / "report" / "reproduction.md").read_text()
    assert "### table1" in report and "### table3" in report
    assert "## Leaderboard" in report and "### cifar10 (preprocessing: paper)" in report
    board = pd.read_csv(workdir / layout.LEADERBOARD["csv"])
    assert (
        set(board["entry"]) == {"DN2", "CAP (no adaptation)", "CAP"} and (board["rank"] >= 1).all()
    )
    assert not re.search(r"\bnan\b", report, flags=re.IGNORECASE)
    pngs = list((workdir / "results" / "figures").rglob("*.png"))
    assert len(pngs) == 3
    assert (workdir / layout.CLAIMS_FIGURE["png"]).stat().st_size > 0
    assert_every_job_logged(workdir, smoke_config())


#: The rules that log, as the smoke run runs them (it draws no bank curves).
#: Rules the smoke config has no job for: bank curves (no bank-size study), the rules of
#: datasets with defect masks (tests/test_localizing_runs.py; CI runs config/industrial.yaml
#: whole) and the concordance of one dataset's classes on several backbones.
NOT_IN_SMOKE = {"figure_bank_curves", "localize", "bootstrap", "figure_localization", "concordance"}
LOGGED_RULES: tuple[str, ...] = tuple(rule for rule in registry.JOB_IDS if rule not in NOT_IN_SMOKE)


def assert_every_job_logged(workdir: Path, config: dict) -> None:
    """Every rule ran and left a log and a benchmark file per job, one evaluate job per
    batch of the plan; the `cap` steps wrote to their log."""
    validated(config)
    logs = {
        (rule, tuple(w.items())): path for rule, w, path in registry.find_job_files("logs", workdir)
    }
    benchmarks = {
        (rule, tuple(w.items())) for rule, w, _ in registry.find_job_files("timings", workdir)
    }
    assert {rule for rule, _ in logs} == set(LOGGED_RULES)
    assert {job for job in logs if not job[0].startswith("spec_")} == benchmarks
    batches = {tuple(vars(b).items()) for b in Plan(config).batches}
    assert {w for rule, w in logs if rule == "evaluate"} == batches
    for (rule, _), log in logs.items():
        if rule in registry.SPEC_STEPS:
            assert log.stat().st_size > 0, log


def test_the_log_check_fails_on_a_run_without_logs(tmp_path):
    with pytest.raises(AssertionError):
        assert_every_job_logged(tmp_path, smoke_config())


@needs_offline_assets
def test_rerun_after_finished_run_does_nothing(smoke_run):
    workdir, config, _ = smoke_run
    result = snakemake(workdir, "-n", "all", "--configfile", str(config))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def planned_jobs(workdir: Path, config: Path) -> dict[str, int]:
    """The jobs ``snakemake -n all`` plans (empty when nothing is to be done)."""
    result = snakemake(workdir, "-n", "all", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    return {} if "Nothing to be done" in output else job_counts(output)


def fitted_runs(workdir: Path) -> set[str]:
    """The runs the batches' last jobs fitted (not read back from the cache)."""
    return {
        f"{path.parent.relative_to(workdir / 'results' / 'runs')}/{path.stem}/{run}"
        for path in (workdir / "results" / "runs").rglob("*.json")
        for run in json.loads(path.read_text())["job"]["fitted"]
    }


@needs_offline_assets
def test_a_run_is_computed_once_whatever_the_config_adds_around_it(smoke_run, tmp_path):
    reference, _, _ = smoke_run
    workdir = tmp_path / "copy"
    shutil.copytree(reference, workdir, symlinks=True)
    config = smoke_config()
    # the same config with its keys in another order: no run, no model, no table
    resaved = workdir / "resaved.yaml"
    resaved.write_text(yaml.safe_dump(config, sort_keys=True))
    assert set(planned_jobs(workdir, resaved)) <= {"report", "all", "total"}
    # a table over variants that already ran: that table, and the claims (with their
    # figure) that read every table
    config["tables"]["k_and_dn2"] = {
        "title": "K and DN2",
        "layout": "variants_as_rows",
        "datasets": ["cifar10"],
        "entries": [{"label": "K=4", "variant": "k4"}, {"label": "DN2", "variant": "dn2"}],
    }
    extended = write_config(workdir / "table.yaml", config)
    rerun = {"table", "claims", "claims_figure", "report", "all", "total"}
    assert set(planned_jobs(workdir, extended)) == rerun
    # a new variant: its classes' batches run again and fit its runs alone
    config["variants"]["k2"] = {"method": "cap", "k": 2}
    config["tables"]["table3"]["entries"].insert(0, {"label": "2", "variant": "k2"})
    extended = write_config(workdir / "variant.yaml", config)
    counts = planned_jobs(workdir, extended)
    assert counts["evaluate"] == 2 and "train" not in counts  # CIFAR-10's two classes
    before = fitted_runs(workdir)
    result = snakemake(workdir, "--cores", "2", "all", "--configfile", str(extended))
    assert result.returncode == 0, result.stderr[-3000:]
    setting = Plan(validated(config)).variants.setting("cifar10", "k2").key
    new = fitted_runs(workdir) - before
    assert new == {f"cifar10/mobilenet_v2/{cls}/all/{setting}/seed0" for cls in ("0", "1")}
    runs = read_runs_table(workdir / layout.RUNS_TABLE)
    assert set(runs.loc[runs["setting"] == setting, "variant"]) == {"k2"}
    assert auroc_records(workdir).items() >= auroc_records(reference).items()  # none changed


@needs_offline_assets
def test_killed_run_resumes_with_the_same_aurocs(smoke_run, tmp_path):
    reference_dir, _, _ = smoke_run
    config = write_config(tmp_path / "smoke.yaml", smoke_config())
    command = snakemake_command(tmp_path, "--cores", "2", "all", "--configfile", str(config))
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 600
    while not list((tmp_path / "results" / "runs").rglob("*.json")):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "results" / "report" / "reproduction.md").exists()

    assert snakemake(tmp_path, "--unlock", "--configfile", str(config)).returncode == 0
    result = snakemake(
        tmp_path, "--cores", "2", "all", "--configfile", str(config), "--rerun-incomplete"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert auroc_records(tmp_path) == auroc_records(reference_dir)


@needs_offline_assets
def test_snakemake_html_report_renders_without_errors(smoke_run):
    workdir, config, _ = smoke_run
    result = snakemake(workdir, "--report", "report.html", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ERROR" not in result.stdout + result.stderr
    html = (workdir / "report.html").read_text(errors="replace")
    assert "reproduction.md" in html and "Table" in html


@needs_offline_assets
def test_jobs_find_cap_without_an_activated_environment(tmp_path):
    config = write_config(tmp_path / "smoke.yaml", smoke_config())
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # as `venv/bin/snakemake` without activation
    assert shutil.which("cap", path=env["PATH"]) is None
    result = snakemake(
        tmp_path, "--cores", "1", "resources/mobilenet-v2", "--configfile", str(config), env=env
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "resources" / "mobilenet-v2" / MOBILENET.name).is_file()


@needs_offline_assets
def test_report_reads_only_this_configs_timings(smoke_run):
    workdir, config, _ = smoke_run
    # a job of another config in the same folder: another dataset, another class
    stray = workdir / "results/timings/train/imagenet/mobilenet_v2/0/all/cap-0123456789/seed0.tsv"
    stray.parent.mkdir(parents=True)
    stray.write_text("s\th:m:s\tmax_rss\n99999.0\t27:46:39\t1.0\n")
    result = snakemake(
        workdir, "--cores", "1", "--forcerun", "report", layout.REPORT, "--configfile", str(config)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = (workdir / layout.REPORT).read_text()
    runtimes = report.split("## Runtime per rule")[1].split("##")[0]
    assert "| train" in runtimes and "99999" not in runtimes
