"""Figures 3 and 6: the mean test anomaly score of normal and anomalous images after each
epoch, one pair of curves per variant (its runs record their test scores per epoch)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cap.workflow.figures.base import FigureKind, curves_params, records_inputs


def draw(inputs: Mapping[str, Any], params: Mapping[str, Any], out: Path) -> None:
    from cap.reporting.figures import draw_score_curves

    draw_score_curves(inputs, params, out)


KIND = FigureKind(
    name="score_curves",
    job="{dataset}/{backbone}/{cls}",
    needs="history",
    inputs=functools.partial(records_inputs, kind="score_curves"),
    params=curves_params,
    draw=draw,
    local=True,
)
