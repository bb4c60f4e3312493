"""Figures 2 and 7: a test image, its nearest normal images, and their weights with and
without the reformed self-attention (a trained run's first seed)."""

from __future__ import annotations

import functools

from cap.workflow.figures.base import FigureKind, model_inputs, model_params

KIND = FigureKind(
    name="attention",
    job="{dataset}/{backbone}/{cls}/{variant}",
    needs="model",
    inputs=functools.partial(model_inputs, kind="attention"),
    params=functools.partial(model_params, kind="attention"),
    draw="cap.reporting.figure_examples:draw_attention",
)
