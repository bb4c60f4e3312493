"""Test images of each defect type, their ground-truth contour, and each method's anomaly
map over them, as the pixel metrics score them (datasets with defect masks)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from cap.evaluation.records import map_name
from cap.workflow.figures.base import FigureKind
from cap.workflow.layout import MAPS, RECORDS

if TYPE_CHECKING:
    from cap.workflow.config import Figure
    from cap.workflow.steps import Steps


def inputs(steps: Steps, figure: Figure) -> dict[str, str]:
    """The maps, the records they are checked against and the test embeddings of the
    category drawn."""
    batch = steps.plan.batch_of(steps.plan.targets.figure_runs("localization", figure)[0])
    return {
        "maps": batch.path(MAPS),
        "records": batch.path(RECORDS),
        "test_emb": steps.split_inputs(batch.dataset, batch.backbone, batch.cls)["test_emb"],
    }


def params(steps: Steps, figure: Figure) -> dict[str, Any]:
    """The images, the figure's entry, and each drawn variant's column: the entry of its
    first seed's maps (:func:`map_name`)."""
    variants = steps.plan.variants
    columns = {}
    for variant in figure.variants:
        setting = variants.setting(figure.dataset, variant).key
        columns[variant] = map_name(setting, variants.seeds_of(figure.dataset, setting)[0])
    return {
        "dataset": steps.images(figure.dataset, str(figure.cls)),
        "figure": asdict(figure),
        "columns": columns,
    }


KIND = FigureKind(
    name="localization",
    job="{dataset}/{backbone}/{cls}",
    needs="maps",
    inputs=inputs,
    params=params,
    draw="cap.reporting.localization_figure:draw_localization",
    local=True,
)
