"""Figures 3 and 6: the mean test anomaly score of normal and anomalous images after each
epoch, one pair of curves per variant (its runs record their test scores per epoch)."""

from __future__ import annotations

import functools

from cap.workflow.figures.base import FigureKind, curves_params, records_inputs

KIND = FigureKind(
    name="score_curves",
    job="{dataset}/{backbone}/{cls}",
    needs="history",
    inputs=functools.partial(records_inputs, kind="score_curves"),
    params=curves_params,
    draw="cap.reporting.figures:draw_score_curves",
    local=True,
)
