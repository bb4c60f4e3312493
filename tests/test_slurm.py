"""Cluster execution on a real single-node SLURM (.ci/slurm-up): the smoke run through the
SLURM executor and the project's profile, and a cancelled job that a rerun recovers.

The cluster keeps no accounting database: sacct reads finished jobs from SLURM's
job-completion log (``sacct --completion``), and the executor polls job states with squeue.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from assets import REPO, needs_offline_assets
from workflow_helpers import auroc_records, smoke_config, snakemake_command, write_config

from cap.workflow import layout

pytestmark = [pytest.mark.slurm, needs_offline_assets]

PROFILE = REPO / "workflow" / "profiles" / "slurm"
#: Rules the profile submits to SLURM; the others are local rules of the submitting host.
CLUSTER_RULES = {
    "embed",
    "neighbors",
    "train",
    "evaluate",
    "figure_attention",
    "figure_anomaly_maps",
}
#: The profile fitted to a 2-CPU node from the command line, as README "On a cluster" shows
#: (a command-line option replaces the profile's entry of the same name, hence gpu=0 again),
#: and states polled every second with squeue, as there is no slurmdbd for sacct.
CLUSTER_ARGS = [
    *("--default-resources", "slurm_partition=cpu", "runtime=15", "mem_mb=1000"),
    *("--set-resources", "embed:gpu=0", "train:gpu=0", "evaluate:gpu=0"),
    *("--max-threads", "1"),
    *("--slurm-status-command", "squeue"),
    *("--slurm-init-seconds-before-status-checks", "1"),
    *("--seconds-between-status-checks", "1"),
]


def slurm_snakemake_command(workdir: Path, config: Path) -> list[str]:
    """The smoke DAG of ``workdir`` through the SLURM executor."""
    return snakemake_command(
        workdir, "all", "--configfile", str(config), *CLUSTER_ARGS, profile=str(PROFILE)
    )


def run_on_slurm(workdir: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        slurm_snakemake_command(workdir, config), capture_output=True, text=True, timeout=900
    )


def submitted_jobs(log: str) -> dict[str, str]:
    """{SLURM job id: rule} of every job snakemake submitted, from its log."""
    blocks = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)$", log, re.M)
    rules = {jobid: rule for rule, jobid in blocks}
    submissions = re.findall(r"^Job (\d+) has been submitted with SLURM jobid (\d+) ", log, re.M)
    assert len(submissions) == len(rules), "a job ran outside SLURM or was never submitted"
    return {slurm_id: rules[jobid] for jobid, slurm_id in submissions}


def sacct(run_log: str, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    """{job id: sacct's record} of the run's finished jobs; the table goes to the test log."""
    run_id = re.search(r"^SLURM run ID: (\S+)$", run_log, re.M).group(1)
    fields = "JobID,JobName,Partition,NodeList,State,Start,Elapsed"
    table = subprocess.run(
        ["sacct", "--completion", "--parsable2", f"--format={fields}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    rows = [
        row for row in csv.DictReader(io.StringIO(table), delimiter="|") if row["JobName"] == run_id
    ]
    with capsys.disabled():  # shown even without -s: CI's log records the jobs
        print(f"\nsacct --completion, SLURM run {run_id}:")
        print("\n".join(f"  {' '.join(f'{row[f]:>9}' for f in fields.split(','))}" for row in rows))
    return {row["JobID"]: row for row in rows}


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    """The single-node cluster of .ci/slurm-up for this module, stopped after it."""
    up = subprocess.run(
        [str(REPO / ".ci" / "slurm-up")], capture_output=True, text=True, timeout=900
    )
    if up.returncode != 0:
        reason = (up.stderr.strip() or f"exit status {up.returncode}").splitlines()[-1]
        pytest.skip(f"SLURM cannot start here: {reason}")
    yield
    subprocess.run([str(REPO / ".ci" / "slurm-down")], check=True, timeout=120)


@pytest.fixture(scope="module")
def slurm_run(
    slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """One complete run of the smoke DAG on the cluster: workdir, config file, snakemake's log."""
    workdir = tmp_path_factory.mktemp("slurm")
    config = write_config(workdir / "smoke.yaml", smoke_config())
    result = run_on_slurm(workdir, config)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    return workdir, config, log


def test_slurm_run_submits_every_job_and_matches_the_local_aurocs(slurm_run, smoke_run, capsys):
    workdir, _, log = slurm_run
    jobs = submitted_jobs(log)
    assert set(jobs.values()) == CLUSTER_RULES
    assert "localrule fetch:" in log and "localrule report:" in log
    records = sacct(log, capsys)
    assert set(records) == set(jobs)
    assert {(row["State"], row["Partition"], row["NodeList"]) for row in records.values()} == {
        ("COMPLETED", "cpu", "localhost")
    }
    assert auroc_records(workdir) == auroc_records(smoke_run[0])


def test_slurm_cancelled_job_stops_the_run_and_the_rerun_recovers(
    slurm_run, smoke_run, tmp_path, capsys
):
    finished, _, _ = slurm_run
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir, symlinks=True)
    config = workdir / "smoke.yaml"
    # One batch to redo (snakemake redoes missing files only where needed), from scratch:
    # without the run cache, its job fits its runs again, long enough to be cancelled.
    for output in ("runs/{}.json", "scores/{}.csv.gz"):
        (workdir / "results" / output.format("cifar10/mobilenet_v2/0/all")).unlink()
    (workdir / "results" / "tables" / "runs.csv").unlink()
    shutil.rmtree(workdir / layout.RUN_CACHE)

    log_file = tmp_path / "cancelled.log"
    with log_file.open("w") as out:
        run = subprocess.Popen(slurm_snakemake_command(workdir, config), stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 300
            while not (job := running_job("rule_evaluate_")):
                assert run.poll() is None, log_file.read_text()[-5000:]
                assert time.monotonic() < deadline, "the evaluate job never ran"
                time.sleep(0.2)
            subprocess.run(["scancel", job], check=True, timeout=30)
            assert run.wait(timeout=300) != 0
        finally:
            run.kill()  # only where a failed check left it running
    log = log_file.read_text()
    error = (
        rf"Error in rule evaluate:\n    message: SLURM-job '{job}' failed, "
        r"SLURM status is: 'CANCELLED'"
    )
    assert re.search(error, log), log[-5000:]
    assert sacct(log, capsys)[job]["State"] == "CANCELLED"

    rerun = run_on_slurm(workdir, config)
    log = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, log[-5000:]
    assert "evaluate" in submitted_jobs(log).values()
    assert {row["State"] for row in sacct(log, capsys).values()} == {"COMPLETED"}
    assert auroc_records(workdir) == auroc_records(smoke_run[0])


def running_job(comment_prefix: str) -> str | None:
    """The id of a running job whose comment (the executor's rule_<rule>_wildcards_…) starts so."""
    queue = subprocess.run(
        ["squeue", "--noheader", "--states=RUNNING", "--format=%i %k"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    jobs = (line.split() for line in queue.splitlines())
    return next((job for job, comment in jobs if comment.startswith(comment_prefix)), None)
