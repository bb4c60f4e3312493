"""AUROC against the size of the normal bank: one panel per class and their mean, one line
per method (a variant per bank size), ± the std over seeds."""

from __future__ import annotations

import functools

from cap.workflow.figures.base import FigureKind, curves_params, records_inputs

KIND = FigureKind(
    name="bank_curves",
    job="{dataset}/{backbone}/{name}",
    needs="scores",
    inputs=functools.partial(records_inputs, kind="bank_curves"),
    params=curves_params,
    draw="cap.reporting.figures:draw_bank_curves",
    local=True,
)
