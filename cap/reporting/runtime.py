"""How long a run took: per rule, and from the first job's start to the last one's end,
from Snakemake's timing files (found under ``results/`` through the layout)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cap.reporting.markdown import markdown

#: A job's timing file and its rule, as :func:`cap.workflow.registry.find_job_files` finds it.
Timing = tuple[str, str | os.PathLike[str]]


def read_timings(timings: Sequence[Timing]) -> pd.DataFrame:
    """Every timing file's rows, each file read once: its rule, the file (one job), the
    wall seconds ``s``, the max RSS (MB) and the file's mtime ``end`` (written as its job
    ends)."""
    frames = []
    for rule, path in timings:
        frame = pd.read_csv(path, sep="\t")
        rss = frame.get("max_rss", np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "rule": rule,
                    "job": os.fspath(path),
                    "s": pd.to_numeric(frame["s"], errors="coerce"),
                    "max_rss": pd.to_numeric(rss, errors="coerce"),
                    "end": Path(path).stat().st_mtime,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def job_intervals(jobs: pd.DataFrame) -> list[tuple[float, float]]:
    """Each job's (start, end) in epoch seconds (:func:`read_timings`): it ended as its
    timing file was written, after its ``s`` seconds."""
    per_job = jobs.groupby("job", sort=False).agg(s=("s", "sum"), end=("end", "first"))
    return [(end - s, end) for s, end in zip(per_job["s"], per_job["end"], strict=True)]


def elapsed_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """From the first job's start to the last job's end (:func:`job_intervals`). A resumed
    run's pause counts."""
    return max(end for _, end in intervals) - min(start for start, _ in intervals)


def idle_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """The part of :func:`elapsed_seconds` when no job ran: a resumed run's pause."""
    busy, reached = 0.0, -math.inf
    for start, end in sorted(intervals):
        busy += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return elapsed_seconds(intervals) - busy


def runtime_section(timings: Sequence[Timing]) -> str:
    """The wall time, its idle part, and the per-rule table, as Markdown."""
    if not timings:
        return "No timing files."
    jobs = read_timings(timings)
    intervals = job_intervals(jobs)
    minutes, idle = elapsed_seconds(intervals) / 60, idle_seconds(intervals) / 60
    return (
        f"Wall time, from the first job's start to the last job's end: {minutes:.1f} min, "
        f"of which {idle:.1f} min with no job running (a resumed run's pause)."
        f"\n\n{markdown(runtime_summary(jobs))}"
    )


def runtime_summary(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule (:func:`read_timings`): job count, total and longest wall time (s),
    largest max RSS (MB)."""
    table = jobs.groupby("rule", sort=True).agg(
        jobs=("s", "size"),
        total_s=("s", "sum"),
        max_s=("s", "max"),
        max_rss_mb=("max_rss", "max"),
    )
    return table.round(1).reset_index()
