"""Figures 4 and 5: the difference of cos(z, f) and cos(ẑⁿ, f) over the last feature map
of test images, upsampled (a trained run's first seed)."""

from __future__ import annotations

import functools

from cap.workflow.figures.base import FigureKind, model_inputs, model_params

KIND = FigureKind(
    name="anomaly_maps",
    job="{dataset}/{backbone}/{cls}/{variant}",
    needs="model",
    inputs=functools.partial(model_inputs, kind="anomaly_maps"),
    params=functools.partial(model_params, kind="anomaly_maps"),
    draw="cap.reporting.figure_examples:draw_anomaly_maps",
)
