"""How long a run took: per rule, and from the first job's start to the last one's end,
from Snakemake's benchmark files (found under ``results/`` through the layout)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cap.reporting.markdown import markdown

#: A job's benchmark file and its rule, as :func:`cap.benchmark.layout.find_job_files` finds it.
Benchmark = tuple[str, str | os.PathLike[str]]


def job_intervals(benchmarks: Sequence[str | os.PathLike[str]]) -> list[tuple[float, float]]:
    """Each job's (start, end) in epoch seconds: a benchmark file is written as its job
    ends (its mtime), after the job's ``s`` seconds."""
    intervals = []
    for path in benchmarks:
        seconds = pd.to_numeric(pd.read_csv(path, sep="\t")["s"], errors="coerce").sum()
        end = Path(path).stat().st_mtime
        intervals.append((end - seconds, end))
    return intervals


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


def runtime_section(benchmarks: Sequence[Benchmark]) -> str:
    """The wall time, its idle part, and the per-rule table, as Markdown."""
    if not benchmarks:
        return "No benchmark files."
    intervals = job_intervals([path for _, path in benchmarks])
    minutes, idle = elapsed_seconds(intervals) / 60, idle_seconds(intervals) / 60
    return (
        f"Wall time, from the first job's start to the last job's end: {minutes:.1f} min, "
        f"of which {idle:.1f} min with no job running (a resumed run's pause)."
        f"\n\n{markdown(runtime_summary(benchmarks))}"
    )


def runtime_summary(benchmarks: Sequence[Benchmark]) -> pd.DataFrame:
    """Per rule: job count, total and longest wall time (s), largest max RSS (MB)."""
    frames = []
    for rule, path in benchmarks:
        frame = pd.read_csv(path, sep="\t")
        frames.append(
            pd.DataFrame(
                {
                    "rule": rule,
                    "s": pd.to_numeric(frame["s"], errors="coerce"),
                    "max_rss": (
                        pd.to_numeric(frame["max_rss"], errors="coerce")
                        if "max_rss" in frame
                        else np.nan
                    ),
                }
            )
        )
    table = (
        pd.concat(frames)
        .groupby("rule", sort=True)
        .agg(
            jobs=("s", "size"),
            total_s=("s", "sum"),
            max_s=("s", "max"),
            max_rss_mb=("max_rss", "max"),
        )
    )
    return table.round(1).reset_index()
