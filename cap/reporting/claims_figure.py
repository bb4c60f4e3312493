"""The figure a reader looks at for a config's own claims: each claim's paired difference on
each dataset (and pooled over them) with its 95% interval, one colour per claim, a filled
marker where the interval decides the verdict (it excludes 0), an open one where it does
not (:mod:`cap.reporting.claims`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from cap.reporting.claims import CONFIDENCE, FAILS, HOLDS
from cap.reporting.figures import save_figure
from cap.utils.errors import DataError

#: Inches of the figure's width, and of each dataset row's height.
WIDTH_IN, ROW_IN = 7.0, 0.28


def plot_claims(
    claims: pd.DataFrame, texts: Sequence[str], out_prefix: str | os.PathLike[str]
) -> list[Path]:
    """Draw the claims ``texts`` of a claims table (:func:`judge_claims`' rows, those with a
    difference) to ``out_prefix``.png and .pdf: datasets down the y axis, one group per
    claim, the difference in AUROC points along x."""
    rows = claims[claims["claim"].isin(texts) & claims["difference"].notna()]
    if rows.empty:
        raise DataError("none of the config's claims has a difference to draw")
    datasets = list(dict.fromkeys(rows["dataset"]))
    claimed = [text for text in texts if text in set(rows["claim"])]
    step = 0.8 / len(claimed)
    figure = Figure(figsize=(WIDTH_IN, 1.2 + ROW_IN * len(datasets) * len(claimed)))
    axes = figure.add_subplot()
    for i, (color, text) in enumerate(
        zip(sns.color_palette("colorblind", len(claimed)), claimed, strict=True)
    ):
        own = rows[rows["claim"] == text]
        y = own["dataset"].map(datasets.index).to_numpy() + (i - (len(claimed) - 1) / 2) * step
        below = (own["difference"] - own["ci_low"]).fillna(0.0).clip(lower=0).to_numpy()
        above = (own["ci_high"] - own["difference"]).fillna(0.0).clip(lower=0).to_numpy()
        axes.errorbar(
            own["difference"], y, xerr=[below, above], color=color, linestyle="none",
            capsize=2, elinewidth=1, label=text,
        )  # fmt: skip
        decided = own["verdict"].isin([HOLDS, FAILS]).to_numpy()
        axes.scatter(own["difference"][decided], y[decided], color=color, zorder=3, s=22)
        axes.scatter(
            own["difference"][~decided], y[~decided], facecolors="white", edgecolors=color,
            zorder=3, s=22,
        )  # fmt: skip
    axes.axvline(0.0, color="0.3", linewidth=0.8)
    axes.set_yticks(range(len(datasets)), datasets)
    axes.invert_yaxis()
    axes.grid(axis="x", alpha=0.3)
    axes.set_xlabel(
        f"paired difference, AUROC points ({CONFIDENCE:.0%} interval over classes; "
        "filled: the interval excludes 0)"
    )
    figure.legend(loc="outside lower center", fontsize="small", ncols=1)
    figure.set_layout_engine("constrained")
    return save_figure(figure, out_prefix)
