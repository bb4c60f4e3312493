"""The localization figure: test images of each defect type, their ground-truth contour,
and each method's anomaly map over them, as the pixel metrics score them.

A row is one test image (the first ``n_per_type`` of each defect type, and as many good
ones), as the backbone saw it (resized and cropped like its embeddings); a column is a
method. A map is the run's coarse map brought to the image's resolution and smoothed
(:func:`cap.metrics.localization.full_resolution`), drawn on one colour scale per method:
from its lowest pixel score over the whole test split to its :data:`TOP` quantile (a few
extreme pixels would dim every other map), so that a row shows where a method's scores
stand among all of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from cap.metrics.localization import full_resolution
from cap.reporting.figures import save_figure, show_image
from cap.utils.errors import DataError

#: Side (inches) of one panel.
PANEL_IN = 1.6
#: The defect-free images' type.
GOOD = "good"
#: The quantile of a method's pixel scores at the top of its colour scale.
TOP = 0.995


@dataclass(frozen=True)
class LocalizationExample:
    """One row of the figure."""

    image: Image.Image  # as the backbone saw it (S × S)
    mask: np.ndarray  # (S, S) bool ground-truth defect mask
    title: str  # the image's defect type and name
    heatmaps: dict[str, np.ndarray]  # method → (S, S) its map scaled to [0, 1] (its own scale)


def localization_examples(
    maps: Mapping[str, np.ndarray],
    columns: Mapping[str, str],
    test_embeddings: Any,
    test_images: Any,
    *,
    n_per_type: int,
) -> list[LocalizationExample]:
    """The figure's rows.

    Parameters
    ----------
    maps
        A maps file's arrays (:func:`cap.evaluation.records.read_maps`): ``ids`` and each
        run's coarse maps (M, h, w).
    columns
        Method label → the run's entry in ``maps`` (:func:`cap.evaluation.records.map_name`).
    test_embeddings
        The test split's embeddings: its ids, defect types, masks and preprocessing.
    test_images
        The test split's images (:func:`cap.reporting.figure_examples.load_images`).
    n_per_type
        Images shown of each defect type (and of good ones).
    """
    from cap.data.transforms import get_preprocessing

    if test_embeddings.masks is None or test_embeddings.defect_type is None:
        raise DataError(
            "the test embeddings hold no defect masks: a localization figure needs them"
        )
    if list(maps["ids"]) != list(test_embeddings.ids):
        raise DataError("the maps file's images are not those of the test embeddings")
    missing = sorted(name for name in columns.values() if name not in maps)
    if missing:
        raise DataError(
            f"the maps file holds no maps of {missing}: a method that does not localize"
        )
    masks = np.asarray(test_embeddings.masks, dtype=bool)  # (M, S, S)
    heatmaps = {
        label: _scaled(full_resolution(maps[name], masks.shape[1:]))
        for label, name in columns.items()
    }
    show = get_preprocessing(test_embeddings.attrs.get("preprocessing", "paper"))
    examples = []
    for row in _rows(test_embeddings.defect_type, n_per_type):
        identifier = test_embeddings.ids[row]
        image, _ = test_images[test_images.index_of(identifier)]
        examples.append(
            LocalizationExample(
                image=show(image),
                mask=masks[row],
                title=f"{test_embeddings.defect_type[row]}: {identifier.rsplit('/', 1)[-1]}",
                heatmaps={label: values[row] for label, values in heatmaps.items()},
            )
        )
    return examples


def _rows(defect_types: Sequence[str], n_per_type: int) -> list[int]:
    """The first ``n_per_type`` rows of each type: good first, then the defects by name."""
    kinds = [GOOD, *sorted(set(defect_types) - {GOOD})]
    return [
        row
        for kind in kinds
        for row in [i for i, found in enumerate(defect_types) if found == kind][:n_per_type]
    ]


def _scaled(values: np.ndarray) -> np.ndarray:
    """``values`` mapped linearly to [0, 1] from their minimum to their :data:`TOP`
    quantile (clipped above)."""
    low, high = float(values.min()), float(np.quantile(values, TOP))
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def plot_localization(
    examples: Sequence[LocalizationExample], out_prefix: str | os.PathLike[str], title: str = ""
) -> list[Path]:
    """Per row: the image with its ground-truth contour, then each method's map over it
    (the contour repeated), one colour scale for all (each map scaled to its method's range)."""
    if not examples:
        raise DataError("no localization examples to plot")
    methods = list(examples[0].heatmaps)
    figure = Figure(
        figsize=(PANEL_IN * (1 + len(methods)) + 0.8, PANEL_IN * len(examples) + 0.5),
        layout="constrained",
    )
    axes = figure.subplots(len(examples), 1 + len(methods), squeeze=False)
    overlay = None
    for row, example in zip(axes, examples, strict=True):
        show_image(row[0], example.image, example.title)
        _contour(row[0], example.mask, "red")
        for axes_of, method in zip(row[1:], methods, strict=True):
            show_image(axes_of, example.image, method)
            overlay = axes_of.imshow(
                example.heatmaps[method], cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0
            )
            _contour(axes_of, example.mask, "white")
    figure.colorbar(overlay, ax=axes.ravel().tolist(), shrink=0.6, label="score (method's scale)")
    if title:
        figure.suptitle(title, fontsize="small")
    return save_figure(figure, out_prefix)


def _contour(axes: Any, mask: np.ndarray, colour: str) -> None:
    """The defect's outline (none on a good image)."""
    if mask.any():
        axes.contour(mask, levels=[0.5], colors=colour, linewidths=0.7)


def draw_localization(inputs: Mapping[str, Any], params: Mapping[str, Any], out: Path) -> None:
    """The localization figure of a figure job (:mod:`cap.workflow.figures.localization`):
    its maps checked against their runs' records, to ``out``.png and .pdf."""
    from cap.evaluation.embeddings import load_embeddings
    from cap.evaluation.records import checked_maps, read_maps, read_runs
    from cap.reporting.figure_examples import load_images

    test = load_embeddings(inputs["test_emb"], feature_maps=False)
    runs = read_runs([inputs["records"]])
    examples = localization_examples(
        checked_maps(read_maps(inputs["maps"]), runs, test.masks, inputs["maps"]),
        params["columns"],
        test,
        load_images(params["dataset"], "test"),
        n_per_type=params["figure"]["options"]["n_per_type"],
    )
    plot_localization(examples, out, title=params["figure"]["title"])
