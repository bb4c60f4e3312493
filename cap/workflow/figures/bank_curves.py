"""AUROC against the size of the normal bank: one panel per class and their mean, one line
per method (a variant per bank size), ± the std over seeds."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cap.workflow.figures.base import FigureKind, curves_params, records_inputs


def draw(inputs: Mapping[str, Any], params: Mapping[str, Any], out: Path) -> None:
    from cap.reporting.figures import draw_bank_curves

    draw_bank_curves(inputs, params, out)


KIND = FigureKind(
    name="bank_curves",
    job="{dataset}/{backbone}/{name}",
    needs="scores",
    inputs=functools.partial(records_inputs, kind="bank_curves"),
    params=curves_params,
    draw=draw,
    local=True,
)
