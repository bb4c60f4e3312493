"""The reproduction report: our tables beside the paper's, its claims, runtimes and setup.

Every table cell is compared with the paper's value (from ``config/paper_results.yaml``)
and flagged when they differ by more than ``tolerance`` AUROC points — but only
where our backbone is the paper's for that dataset; with another backbone (the
demo) the paper's value is context, never a failure.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cap.reporting.claims import CONFIDENCE
from cap.reporting.tables import read_table
from cap.utils.io import write_text_atomic

#: Distributions whose versions the report records, by display name (first installed wins).
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss"),
    "numpy": ("numpy",),
    "scikit-learn": ("scikit-learn",),
    "snakemake": ("snakemake",),
    "cap (capbench)": ("capbench",),
}


def write_report(
    out_md: str | os.PathLike[str],
    *,
    summary: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame | str | os.PathLike[str]],
    paper: Mapping[str, Any],
    backbones_used: Mapping[str, str],
    backbone_models: Mapping[str, str],
    claims: pd.DataFrame,
    tolerance: float = 1.0,
    figures: Sequence[str | os.PathLike[str]] = (),
    benchmarks: Sequence[str | os.PathLike[str]] = (),
    config: Mapping[str, Any],
    environment: Mapping[str, str] | None = None,
    repository: str | os.PathLike[str] | None = None,
) -> None:
    """Write the Markdown reproduction report to ``out_md`` atomically.

    Parameters
    ----------
    summary : DataFrame
        One row per run (``cap aggregate``), for the overview.
    tables : mapping
        Table name → its cells (:func:`cap.reporting.tables.read_table` frame) or table CSV path;
        a Markdown rendering beside a CSV path (same stem) is embedded.
    paper : mapping
        From :func:`cap.reporting.paper.load_paper_results`.
    backbones_used : mapping
        Dataset → the config's name of its backbone (shown).
    backbone_models : mapping
        Dataset → the registry model of its backbone (compared with the paper's).
    claims : DataFrame
        The judged claims (:func:`cap.reporting.claims.judge_report_claims`).
    tolerance : float
        AUROC points beyond which a difference from the paper is flagged.
    figures : sequence of paths
        PNGs to embed, linked relative to the report's folder.
    benchmarks : sequence of paths
        This run's Snakemake benchmark TSVs, ``.../benchmarks/<rule>/...``.
    config : mapping
        The workflow config used, shown verbatim.
    environment : mapping, optional
        Extra provenance (backbone weight hashes, the run's device, ...); its
        entries override the detected ones.
    repository : path, optional
        The git checkout of the code that ran, for its commit.
    """
    out_md = Path(out_md)
    cells = {
        name: source if isinstance(source, pd.DataFrame) else read_table(source)
        for name, source in sorted(tables.items())
    }
    comparison = compare_with_paper(cells, paper, backbone_models, tolerance)
    sections = [
        "# CAP reproduction report",
        _overview(summary, comparison, tolerance),
        "## Datasets and backbones",
        _markdown(_backbone_frame(summary, paper, backbones_used, backbone_models)),
        "## Tables against the paper",
        _tables_section(tables, comparison, tolerance),
        "## The paper's claims in this run",
        claims_section(claims),
        "## Figures",
        _figures_section(figures, out_md.parent),
        "## Runtime per rule",
        _runtime_section(benchmarks),
        "## Provenance and environment",
        _markdown(
            pd.DataFrame(
                list(
                    {
                        **provenance(config, repository),
                        **detect_environment(),
                        **(environment or {}),
                    }.items()
                ),
                columns=["item", "value"],
            )
        ),
        "## Config",
        "```yaml\n" + yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True) + "```",
    ]
    write_text_atomic(out_md, "\n\n".join(sections) + "\n")


def compare_with_paper(
    cells: Mapping[str, pd.DataFrame],
    paper: Mapping[str, Any],
    backbone_models: Mapping[str, str],
    tolerance: float,
) -> pd.DataFrame:
    """One row per computed cell: paper value, ours, difference and whether it is flagged.

    ``compared`` is True where both values exist and our backbone model (dataset →
    registry model) is the paper's; ``flagged`` where, in addition,
    |ours − paper| > ``tolerance``.
    """
    paper_backbones = paper["backbones"]
    rows = []
    for name, frame in cells.items():
        for cell in frame[frame["kind"] == "computed"].itertuples():
            ours, theirs = cell.auroc_pct, cell.paper_pct
            used, expected = backbone_models.get(cell.dataset), paper_backbones.get(cell.dataset)
            difference = ours - theirs if not (pd.isna(ours) or pd.isna(theirs)) else np.nan
            compared = not pd.isna(difference) and used is not None and used == expected
            rows.append(
                {
                    "table": name,
                    "entry": cell.entry,
                    "dataset": cell.dataset,
                    "backbone": used,
                    "paper_backbone": expected,
                    "paper_pct": theirs,
                    "auroc_pct": ours,
                    "auroc_pct_std": cell.auroc_pct_std,
                    "difference": difference,
                    "compared": compared,
                    "flagged": compared and abs(difference) > tolerance,
                }
            )
    return pd.DataFrame.from_records(rows)


def claims_section(claims: pd.DataFrame) -> str:
    """The claims table with how to read it: the difference, its interval, the test, the
    verdict, and the size of our runs beside the paper's."""
    intro = (
        "Each claim compares two rows of a table, or two gaps between rows, on a dataset "
        "(the paper's claims, and the config's own). Per class, each variant's AUROC is "
        "averaged over its seeds; Δ is the mean over classes of the paired difference "
        f"(AUROC points), with a {CONFIDENCE:.0%} Student-t interval over classes and a "
        "two-sided Wilcoxon signed-rank p-value. Verdict: *holds* when the interval lies "
        "above 0, *does not hold* below 0, *inconclusive* when it contains 0 or a single "
        "class leaves it undefined. Scale: normal training images per class, test images "
        "and optimisation steps per run, ours and the paper's."
    )
    frame = pd.DataFrame({
        "claim": claims["claim"],
        "dataset": claims["dataset"],
        "classes": claims["n_classes"].map(lambda n: "–" if pd.isna(n) else f"{int(n)}"),
        "seeds": claims["n_seeds"].fillna("–"),
        "Δ AUROC": claims["difference"].map(lambda d: "–" if pd.isna(d) else f"{d:+.2f}"),
        f"{CONFIDENCE:.0%} CI": [
            "–" if pd.isna(low) else f"[{low:+.2f}, {high:+.2f}]"
            for low, high in zip(claims["ci_low"], claims["ci_high"], strict=True)
        ],
        "Wilcoxon p": claims["wilcoxon_p"].map(lambda p: "–" if pd.isna(p) else f"{p:.3g}"),
        "verdict": claims["verdict"],
        "scale: images/class / test / steps": claims["scale"].fillna("–"),
    })  # fmt: skip
    return f"{intro}\n\n{_markdown(frame)}"


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


def _runtime_section(benchmarks: Sequence[str | os.PathLike[str]]) -> str:
    if not benchmarks:
        return "No benchmark files."
    intervals = job_intervals(benchmarks)
    minutes, idle = elapsed_seconds(intervals) / 60, idle_seconds(intervals) / 60
    return (
        f"Wall time, from the first job's start to the last job's end: {minutes:.1f} min, "
        f"of which {idle:.1f} min with no job running (a resumed run's pause)."
        f"\n\n{_markdown(runtime_summary(benchmarks))}"
    )


def runtime_summary(benchmarks: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Per rule: job count, total and longest wall time (s), largest max RSS (MB)."""
    frames = []
    for path in benchmarks:
        frame = pd.read_csv(path, sep="\t")
        frames.append(
            pd.DataFrame(
                {
                    "rule": _rule_of(Path(path)),
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


def provenance(
    config: Mapping[str, Any], repository: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """When, from which commit and with which config (sha256 of its YAML) the report was made."""
    config_yaml = yaml.safe_dump(dict(config), sort_keys=True, allow_unicode=True)
    return {
        "generated (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "commit": _commit(repository),
        "config sha256": hashlib.sha256(config_yaml.encode()).hexdigest(),
    }


def _commit(repository: str | os.PathLike[str] | None) -> str:
    """The checkout's commit, marked when tracked files were changed; "unknown" outside git."""
    if repository is None:
        return "unknown"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repository), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} (with uncommitted changes)" if changed else commit


def detect_environment() -> dict[str, str]:
    """Versions of the packages that shape the numbers, Python, platform and compute device."""
    info = {f"{name} version": _installed_version(dists) for name, dists in PACKAGES.items()}
    info["python"] = platform.python_version()
    info["platform"] = platform.platform()
    info["device"] = _device()
    return info


def backbone_weights(embedding_files: Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    """Which weights each backbone used (torchvision tag or checkpoint sha256), from the
    attributes of the embedding files."""
    import h5py

    weights = {}
    for path in embedding_files:
        with h5py.File(path, "r") as store:
            weights[f"{store.attrs['backbone']} weights"] = str(store.attrs["weights"])
    return weights


def _installed_version(distributions: Sequence[str]) -> str:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _device() -> str:
    try:
        import torch
    except ImportError:
        return "unknown (torch not installed)"
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def _overview(summary: pd.DataFrame, comparison: pd.DataFrame, tolerance: float) -> str:
    compared = comparison[comparison["compared"]] if not comparison.empty else comparison
    flagged = int(compared["flagged"].sum()) if not compared.empty else 0
    seeds = sorted(summary["seed"].dropna().unique().tolist()) if "seed" in summary else []
    lines = [
        f"- Runs: {len(summary)} ({summary['dataset'].nunique()} dataset(s), seeds {seeds}).",
        f"- Cells compared with the paper (same backbone): {len(compared)}; "
        f"differing by more than {tolerance:g} AUROC points: **{flagged}**.",
    ]
    if len(compared) < len(comparison):
        lines.append(
            "- Other cells use another backbone than the paper, or lack a value on one side: "
            "the paper's number is shown as context only."
        )
    return "\n".join(lines)


def _backbone_frame(
    summary: pd.DataFrame,
    paper: Mapping[str, Any],
    backbones_used: Mapping[str, str],
    backbone_models: Mapping[str, str],
) -> pd.DataFrame:
    datasets = list(dict.fromkeys([*backbones_used, *summary["dataset"].unique()]))
    paper_backbones = paper["backbones"]
    return pd.DataFrame(
        {
            "dataset": datasets,
            "backbone (this run)": [
                f"{backbones_used[d]} ({backbone_models[d]})" if d in backbones_used else "–"
                for d in datasets
            ],
            "backbone (paper)": [paper_backbones.get(d, "–") for d in datasets],
            "compared with the paper": [
                "yes"
                if d in paper_backbones and backbone_models.get(d) == paper_backbones[d]
                else "context only"
                for d in datasets
            ],
        }
    )


def _tables_section(
    tables: Mapping[str, pd.DataFrame | str | os.PathLike[str]],
    comparison: pd.DataFrame,
    tolerance: float,
) -> str:
    parts = []
    for name in sorted(tables):
        parts.append(f"### {name}")
        source = tables[name]
        rendered = None if isinstance(source, pd.DataFrame) else Path(source).with_suffix(".md")
        if rendered is not None and rendered.is_file():
            parts.append(rendered.read_text().strip())
        rows = comparison[comparison["table"] == name] if not comparison.empty else comparison
        parts.append(
            _markdown(_comparison_frame(rows, tolerance))
            if not rows.empty
            else "No computed cells."
        )
    return "\n\n".join(parts)


def _comparison_frame(rows: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    def verdict(row: Any) -> str:
        if pd.isna(row.auroc_pct):
            return "not run"
        if pd.isna(row.paper_pct):
            return "no paper value"
        if not row.compared:
            return f"context ({row.backbone} ≠ paper's {row.paper_backbone})"
        return f"⚠ off by > {tolerance:g}" if row.flagged else "ok"

    return pd.DataFrame(
        {
            "entry": rows["entry"],
            "dataset": rows["dataset"],
            "paper": rows["paper_pct"].map(_number),
            "ours": [
                _number(mean) + ("" if pd.isna(std) else f" ± {std:.1f}")
                for mean, std in zip(rows["auroc_pct"], rows["auroc_pct_std"], strict=True)
            ],
            "difference": rows["difference"].map(lambda d: "–" if pd.isna(d) else f"{d:+.1f}"),
            "flag": [verdict(row) for row in rows.itertuples()],
        }
    )


def _figures_section(figures: Sequence[str | os.PathLike[str]], folder: Path) -> str:
    if not figures:
        return "No figures."
    links = []
    for figure in figures:
        relative = Path(os.path.relpath(Path(figure).resolve(), folder.resolve())).as_posix()
        name = _figure_name(Path(figure))
        links.append(f"### {name}\n\n![{name}]({relative})")
    return "\n\n".join(links)


def _figure_name(path: Path) -> str:
    """``…/figures/attention/cifar10/resnet152/1/cap.png`` →
    ``attention cifar10/resnet152/1/cap``."""
    parts = path.with_suffix("").parts
    if "figures" in parts[:-1]:
        kind, *rest = parts[parts.index("figures") + 1 :]
        return f"{kind} {'/'.join(rest)}"
    return path.stem


def _rule_of(path: Path) -> str:
    """The rule a benchmark file belongs to: the folder after ``benchmarks``, or the file's
    own name for single-job rules (``benchmarks/aggregate.tsv``)."""
    parts = path.parts
    if "benchmarks" in parts[:-2]:
        return parts[parts.index("benchmarks") + 1]
    if path.parent.name == "benchmarks":
        return path.stem
    return path.parent.name


def _number(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.1f}"


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True) if not frame.empty else "(none)"
