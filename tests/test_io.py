"""Atomic writes: all or nothing, and files as readable as any other new file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cap.utils.io import atomic_path, write_text_atomic


def test_a_failed_write_leaves_the_destination_and_no_temporary(tmp_path):
    destination = tmp_path / "out.txt"
    write_text_atomic(destination, "before")
    with pytest.raises(RuntimeError), atomic_path(destination) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert destination.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_written_file_gets_the_mode_of_a_new_file(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "shared.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600


@pytest.mark.parametrize(
    ("raised", "in_log", "on_stderr"),
    [
        ("DataError('scores.csv.gz: the scores of run x do not match')",
         "error: scores.csv.gz: the scores of run x do not match",
         "error: scores.csv.gz: the scores of run x do not match\n"),
        ("ZeroDivisionError('a bug')", "ZeroDivisionError: a bug", "Traceback"),
    ],
    ids=["input-error", "bug"],
)  # fmt: skip
def test_a_script_job_ends_on_one_line_naming_the_file_and_its_log_says_why(
    tmp_path, raised, in_log, on_stderr
):
    """F7: a workflow script stopped by bad input prints one line (no traceback) and
    leaves it in its log; a bug keeps its traceback, in the log too."""
    log = tmp_path / "job.log"
    script = (
        "from cap.utils.errors import DataError\n"
        "from cap.utils.logs import log_to\n"
        f"log_to({str(log)!r})\n"
        f"raise {raised}\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert in_log in log.read_text()
    if on_stderr == "Traceback":
        assert "Traceback" in result.stderr and "Traceback" in log.read_text()
    else:
        assert result.stderr == on_stderr
