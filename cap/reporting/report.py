"""The reproduction report: our tables beside the paper's, the claims judged, the
leaderboard, figures, runtimes and provenance, in one Markdown file.

Each section comes from a module of its own: :mod:`cap.reporting.comparison` (cells
against the paper), :mod:`cap.reporting.claims`, :mod:`cap.reporting.runtime`,
:mod:`cap.reporting.provenance`; this module puts them in order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cap.reporting.claims import CONFIDENCE
from cap.reporting.comparison import backbone_frame, compare_with_paper, comparison_frame, overview
from cap.reporting.markdown import markdown
from cap.reporting.provenance import detect_environment, provenance
from cap.reporting.runtime import Timing, runtime_section
from cap.reporting.tables import read_table
from cap.utils.io import write_text_atomic


@dataclass(frozen=True)
class ReportInputs:
    """What the report sets side by side."""

    runs: pd.DataFrame  # the long-form runs table (``cap.evaluation.records``)
    tables: Mapping[str, str | os.PathLike[str]]  # name → table CSV; its .md beside is shown
    claims: pd.DataFrame  # judged (:func:`cap.reporting.claims.judge_report_claims`)
    paper: Mapping[str, Any]  # :func:`cap.reporting.paper.load_paper_results`
    backbones: Mapping[str, tuple[str, str]]  # dataset → (config's backbone name, model)
    config: Mapping[str, Any]  # the workflow config, shown verbatim
    tolerance: float = 1.0  # AUROC points beyond which a difference from the paper is flagged
    sections: Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)  # once-rule
    #  → its Markdown, shown under the rule's name (the leaderboard, where there is one)
    figures: Sequence[str | os.PathLike[str]] = ()  # PNGs, linked relative to the report
    timings: Sequence[Timing] = ()  # this run's jobs' (rule, timing file)
    environment: Mapping[str, str] = field(default_factory=dict)  # extra provenance
    repository: str | os.PathLike[str] | None = None  # the checkout that ran, for its commit


def write_report(out_md: str | os.PathLike[str], inputs: ReportInputs) -> None:
    """Write the Markdown reproduction report to ``out_md`` atomically."""
    out_md = Path(out_md)
    cells = {name: read_table(path) for name, path in sorted(inputs.tables.items())}
    models = {dataset: model for dataset, (_, model) in inputs.backbones.items()}
    comparison = compare_with_paper(cells, inputs.paper, models, inputs.tolerance)
    sections = [
        "# CAP reproduction report",
        overview(inputs.runs, comparison, inputs.tolerance),
        "## Datasets and backbones",
        markdown(backbone_frame(inputs.runs, inputs.paper, inputs.backbones)),
        "## Tables against the paper",
        _tables_section(inputs.tables, comparison, inputs.tolerance),
        "## Claims: the paper's and the config's own",
        claims_section(inputs.claims),
    ]
    for name, path in inputs.sections.items():
        sections += [f"## {name.replace('_', ' ').capitalize()}", Path(path).read_text().strip()]
    sections += [
        "## Figures",
        _figures_section(inputs.figures, out_md.parent),
        "## Runtime per rule",
        runtime_section(inputs.timings),
        "## Provenance and environment",
        markdown(
            pd.DataFrame(
                list(
                    {
                        **provenance(inputs.config, inputs.repository),
                        **detect_environment(),
                        **inputs.environment,
                    }.items()
                ),
                columns=["item", "value"],
            )
        ),
        "## Config",
        "```yaml\n"
        + yaml.safe_dump(dict(inputs.config), sort_keys=False, allow_unicode=True)
        + "```",
    ]
    write_text_atomic(out_md, "\n\n".join(sections) + "\n")


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
    return f"{intro}\n\n{markdown(frame)}"


def _tables_section(
    tables: Mapping[str, str | os.PathLike[str]], comparison: pd.DataFrame, tolerance: float
) -> str:
    parts = []
    for name in sorted(tables):
        parts.append(f"### {name}")
        rendered = Path(tables[name]).with_suffix(".md")
        if rendered.is_file():
            parts.append(rendered.read_text().strip())
        rows = comparison[comparison["table"] == name] if not comparison.empty else comparison
        parts.append(
            markdown(comparison_frame(rows, tolerance)) if not rows.empty else "No computed cells."
        )
    return "\n\n".join(parts)


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
