"""Our table cells against the paper's: compared only where our backbone is the paper's
for that dataset; with another backbone (the demo) the paper's value is context, never a
failure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cap.reporting.markdown import number


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
            ours, theirs = cell.value_pct, cell.paper_pct
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
                    "value_pct": ours,
                    "value_pct_std": cell.value_pct_std,
                    "difference": difference,
                    "compared": compared,
                    "flagged": compared and abs(difference) > tolerance,
                }
            )
    return pd.DataFrame.from_records(rows)


def overview(summary: pd.DataFrame, comparison: pd.DataFrame, tolerance: float) -> str:
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


def backbone_frame(
    summary: pd.DataFrame, paper: Mapping[str, Any], backbones: Mapping[str, tuple[str, str]]
) -> pd.DataFrame:
    """Per dataset: our backbone (config name and model) and preprocessing, the paper's
    backbone, and whether the cells are compared with the paper's or shown as context."""
    datasets = list(dict.fromkeys([*backbones, *summary["dataset"].unique()]))
    paper_backbones = paper["backbones"]
    preprocessing = (
        summary.groupby("dataset")["preprocessing"].first()
        if "preprocessing" in summary
        else pd.Series(dtype=str)
    )
    return pd.DataFrame(
        {
            "dataset": datasets,
            "preprocessing": [preprocessing.get(d, "–") for d in datasets],
            "backbone (this run)": [
                f"{backbones[d][0]} ({backbones[d][1]})" if d in backbones else "–"
                for d in datasets
            ],
            "backbone (paper)": [paper_backbones.get(d, "–") for d in datasets],
            "compared with the paper": [
                "yes"
                if d in paper_backbones and d in backbones and backbones[d][1] == paper_backbones[d]
                else "context only"
                for d in datasets
            ],
        }
    )


def comparison_frame(rows: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    def verdict(row: Any) -> str:
        if pd.isna(row.value_pct):
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
            "paper": rows["paper_pct"].map(number),
            "ours": [
                number(mean) + ("" if pd.isna(std) else f" ± {std:.1f}")
                for mean, std in zip(rows["value_pct"], rows["value_pct_std"], strict=True)
            ],
            "difference": rows["difference"].map(lambda d: "–" if pd.isna(d) else f"{d:+.1f}"),
            "flag": [verdict(row) for row in rows.itertuples()],
        }
    )
