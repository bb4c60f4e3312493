"""The paper's figures: score curves (Figs. 3, 6), attention weights (Figs. 2, 7) and
anomaly maps (Figs. 4, 5).

Every plot writes ``{prefix}.png`` (for the report, :data:`DPI` dots per inch) and
``{prefix}.pdf`` (for papers) atomically and returns both paths. Figures are built
with matplotlib's object API (no pyplot state, no display needed) at a fixed size,
so the PNG's pixel size is known in advance: inches × :data:`DPI`.

In this module D is the feature dimension, K the number of neighbours shown and
H × W the backbone's spatial feature grid (7 × 7 for 224 × 224 inputs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from PIL import Image

from cap.utils.errors import DataError
from cap.utils.io import atomic_path

DPI = 150
#: Size (inches) of the score-curve figure.
SCORE_CURVES_SIZE: tuple[float, float] = (6.4, 4.0)
#: Side (inches) of one image panel in the attention and anomaly-map figures.
PANEL_IN = 1.2
#: Height (inches) of the weight bar chart under each attention row.
BAR_IN = 1.1
#: Side (inches) of one panel in the anomaly-map figure.
MAP_PANEL_IN = 2.2
#: Size (inches) of one panel of the bank-size figure, and its panels per row.
BANK_PANEL_IN: tuple[float, float] = (3.2, 2.6)
BANK_PANELS_PER_ROW = 3
#: Keys of a ``CAPDetector.history_`` epoch record that the score curves read.
HISTORY_KEYS: tuple[str, ...] = ("epoch", "score_normal_mean", "score_anomaly_mean")


@dataclass(frozen=True)
class AttentionExample:
    """One row of the attention figure: a test image and its K nearest normal images."""

    test_image: Image.Image  # the query, as loaded (RGB)
    neighbor_images: list[Image.Image]  # (K,) nearest normal training images, nearest first
    weights_attention: np.ndarray  # (K,) weight of each neighbour with the reformed attention
    weights_uniform: np.ndarray  # (K,) weight of each neighbour without it (1/k)
    title: str  # row caption


@dataclass(frozen=True)
class AnomalyMapExample:
    """One row of the anomaly-map figure."""

    image: Image.Image  # the 224 × 224 centre crop the backbone saw
    heatmap: np.ndarray  # (224, 224) anomaly map from :func:`anomaly_map`
    mask: np.ndarray | None  # (224, 224) bool ground-truth defect mask (MVTec), else None
    title: str  # row caption


def plot_score_curves(
    histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    out_prefix: str | os.PathLike[str],
    *,
    title: str,
) -> list[Path]:
    """Mean test anomaly score per epoch, normal (solid) vs anomalous (dashed), one colour per λ.

    ``histories`` maps a label (the λ of eq. 7) to the histories of its seeds, each a
    ``CAPDetector.history_`` (one record per epoch with at least :data:`HISTORY_KEYS`).
    Lines are the mean over seeds; with several seeds (counted in the legend) a band shows
    ± one standard deviation across them.
    """
    if not histories:
        raise DataError("no training histories to plot")
    figure = Figure(figsize=SCORE_CURVES_SIZE, layout="constrained")
    axes = figure.add_subplot()
    colors = sns.color_palette("colorblind", len(histories))
    for color, (label, runs) in zip(colors, histories.items(), strict=True):
        epochs, normal, anomalous = _seed_columns(label, runs)  # (E,), (S, E), (S, E)
        legend = f"λ = {label}" + (f" ({len(runs)} seeds)" if len(runs) > 1 else "")
        for scores, style, name in ((normal, "-", legend), (anomalous, "--", None)):
            mean = scores.mean(axis=0)
            axes.plot(epochs, mean, color=color, linestyle=style, label=name)
            if len(scores) > 1:
                spread = scores.std(axis=0, ddof=1)
                axes.fill_between(epochs, mean - spread, mean + spread, color=color, alpha=0.15)
    style = [
        Line2D([], [], color="grey", linestyle="-", label="normal"),
        Line2D([], [], color="grey", linestyle="--", label="anomaly"),
    ]
    axes.legend(handles=axes.get_legend_handles_labels()[0] + style, fontsize="small", ncols=2)
    axes.set(xlabel="epoch", ylabel="mean anomaly score (eq. 8)", title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    return save_figure(figure, out_prefix)


def plot_bank_curves(
    runs: pd.DataFrame,
    curves: Mapping[str, Sequence[str]],
    out_prefix: str | os.PathLike[str],
    *,
    title: str,
) -> list[Path]:
    """AUROC (%) against the bank size (log axis), one panel per class and one for their mean.

    ``runs`` is the long-form runs table (one row per run, with ``n_train``);
    ``curves`` maps a method's label to its settings (``setting`` column: content keys),
    one per bank size. A point is the
    mean over seeds, its error bar ± their standard deviation (the class mean is taken
    per seed first in the last panel).
    """
    if runs.empty or not curves:
        raise DataError("no runs to draw bank-size curves from")
    classes = sorted(runs["cls"].astype(str).unique(), key=_natural)
    panels = [*classes, "mean"]
    columns = min(len(panels), BANK_PANELS_PER_ROW)
    rows = -(-len(panels) // columns)
    figure = Figure(
        figsize=(BANK_PANEL_IN[0] * columns, BANK_PANEL_IN[1] * rows), layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    colors = sns.color_palette("colorblind", len(curves))
    for color, (label, settings) in zip(colors, curves.items(), strict=True):
        chosen = runs[runs["setting"].isin(settings)].assign(auroc_pct=lambda f: 100 * f["auroc"])
        for panel, name in zip(axes, panels, strict=False):
            if name == "mean":
                per_seed = chosen.groupby(["n_train", "seed"])["auroc_pct"].mean().reset_index()
            else:
                per_seed = chosen[chosen["cls"].astype(str) == name]
            points = per_seed.groupby("n_train")["auroc_pct"].agg(["mean", "std"]).reset_index()
            panel.errorbar(
                points["n_train"], points["mean"], yerr=points["std"].fillna(0.0),
                color=color, marker="o", markersize=3, capsize=2, label=label,
            )  # fmt: skip
    class_names = dict(
        zip(runs["cls"].astype(str), runs.get("class_name", runs["cls"]), strict=True)
    )
    sizes = sorted(int(n) for n in runs["n_train"].unique())
    for panel, name in zip(axes, panels, strict=False):
        heading = "mean over classes" if name == "mean" else f"class {name} ({class_names[name]})"
        panel.set(xscale="log", xlabel="normal training images", ylabel="AUROC (%)", title=heading)
        panel.set_xticks(sizes, [f"{n:,}" for n in sizes])  # the bank sizes, not 10^k
        panel.minorticks_off()
        panel.grid(alpha=0.3)
    for panel in axes[len(panels) :]:
        panel.axis("off")
    # the legend in a spare panel where there is one, so that it hides no curve
    spare = axes[len(panels)] if len(axes) > len(panels) else None
    handles, labels = axes[0].get_legend_handles_labels()
    if spare is not None:
        spare.legend(handles, labels, loc="center", fontsize="small")
    else:
        axes[len(panels) - 1].legend(fontsize="small")
    figure.suptitle(title)
    return save_figure(figure, out_prefix)


def _natural(text: str) -> tuple[int, str]:
    """Class ids in numeric order, names after them."""
    return (int(text), "") if text.isdigit() else (10**9, text)


def attention_figure_size(n_examples: int, n_neighbors: int) -> tuple[float, float]:
    """Figure size (inches) of :func:`plot_attention` for its number of rows and neighbours."""
    return PANEL_IN * (n_neighbors + 1), n_examples * (PANEL_IN + BAR_IN)


def plot_attention(
    examples: Sequence[AttentionExample], out_prefix: str | os.PathLike[str]
) -> list[Path]:
    """Per row: the test image, its K nearest normal images and their weights (Figs. 2, 7).

    Under the neighbours, grouped bars compare each neighbour's weight in the
    adaptive normal representation without attention (the plain mean, eq. 4 with
    A = 0) and with the reformed self-attention (eqs. 3–4).
    """
    if not examples:
        raise DataError("no attention examples to plot")
    k = len(examples[0].neighbor_images)
    for example in examples:
        lengths = (example.neighbor_images, example.weights_attention, example.weights_uniform)
        if {len(items) for items in lengths} != {k}:
            raise DataError(
                f"attention example {example.title!r}: expected {k} neighbour images and "
                f"weights, got {len(example.neighbor_images)} images, "
                f"{len(example.weights_attention)} and {len(example.weights_uniform)} weights"
            )
    figure = Figure(figsize=attention_figure_size(len(examples), k), layout="constrained")
    grid = figure.add_gridspec(
        2 * len(examples), k + 1, height_ratios=[PANEL_IN, BAR_IN] * len(examples)
    )
    uniform_color, attention_color = sns.color_palette("colorblind", 2)
    positions = np.arange(k)
    for row, example in enumerate(examples):
        show_image(figure.add_subplot(grid[2 * row, 0]), example.test_image, example.title)
        for j, image in enumerate(example.neighbor_images):
            show_image(figure.add_subplot(grid[2 * row, j + 1]), image, f"#{j + 1}")
        bars = figure.add_subplot(grid[2 * row + 1, 1:])
        bars.bar(
            positions - 0.2,
            example.weights_uniform,
            width=0.4,
            color=uniform_color,
            label="no attention",
        )
        bars.bar(
            positions + 0.2,
            example.weights_attention,
            width=0.4,
            color=attention_color,
            label="attention",
        )
        bars.set_xlim(-0.5, k - 0.5)
        bars.set_xticks(positions, [f"#{j + 1}" for j in positions], fontsize="x-small")
        bars.tick_params(axis="y", labelsize="x-small")
        bars.set_ylabel("weight", fontsize="x-small")
        legend_axes = figure.add_subplot(grid[2 * row + 1, 0])
        legend_axes.axis("off")
        legend_axes.legend(*bars.get_legend_handles_labels(), loc="center", fontsize="x-small")
    return save_figure(figure, out_prefix)


def anomaly_map(
    z: np.ndarray, z_hat_n: np.ndarray, feature_map: np.ndarray, size: int = 224
) -> np.ndarray:
    """Anomaly region of §4.6 (:func:`cap.detectors.knn.cosine_gap_maps`) of one image,
    upsampled bilinearly to ``size`` × ``size`` (the 224 × 224 crop), as the paper draws it.

    Parameters
    ----------
    z : ndarray of shape (D,)
        Pretrained (global-average-pooled) feature of the image.
    z_hat_n : ndarray of shape (D,)
        Its adaptive normal representation ẑⁿ (eq. 4).
    feature_map : ndarray of shape (H, W, D)
        The backbone's last feature map f before pooling.

    Returns
    -------
    ndarray of shape (size, size), float32
    """
    from cap.detectors.knn import cosine_gap_maps
    from cap.metrics.localization import full_resolution

    coarse = cosine_gap_maps(
        np.reshape(z, (1, -1)), np.reshape(z_hat_n, (1, -1)), np.asarray(feature_map)[None]
    )  # (1, H, W)
    return full_resolution(coarse, (size, size), sigma=0.0)[0]


def anomaly_maps_figure_size(n_examples: int, with_masks: bool) -> tuple[float, float]:
    """Figure size (inches) of :func:`plot_anomaly_maps`."""
    columns = 3 if with_masks else 2
    return MAP_PANEL_IN * columns + 0.6, (MAP_PANEL_IN + 0.3) * n_examples


def plot_anomaly_maps(
    examples: Sequence[AnomalyMapExample], out_prefix: str | os.PathLike[str]
) -> list[Path]:
    """Per row: the image, the anomaly map over it and, where any exists, the ground-truth mask.

    All maps share one colour scale (0 to the largest value shown), so normal and
    anomalous rows can be compared.
    """
    if not examples:
        raise DataError("no anomaly-map examples to plot")
    with_masks = any(example.mask is not None for example in examples)
    figure = Figure(
        figsize=anomaly_maps_figure_size(len(examples), with_masks), layout="constrained"
    )
    axes = figure.subplots(len(examples), 3 if with_masks else 2, squeeze=False)
    vmax = max(float(np.max(example.heatmap)) for example in examples) or 1.0
    for row, example in zip(axes, examples, strict=True):
        show_image(row[0], example.image, example.title)
        show_image(row[1], example.image, "anomaly map")
        overlay = row[1].imshow(example.heatmap, cmap="viridis", alpha=0.55, vmin=0.0, vmax=vmax)
        if with_masks:
            row[2].axis("off")
            if example.mask is not None:
                row[2].imshow(
                    np.asarray(example.mask, dtype=float), cmap="gray", vmin=0.0, vmax=1.0
                )
                row[2].set_title("ground truth", fontsize="x-small")
    figure.colorbar(overlay, ax=axes.ravel().tolist(), shrink=0.8, label="|cos(z, f) − cos(ẑⁿ, f)|")
    return save_figure(figure, out_prefix)


def _seed_columns(
    label: str, runs: Sequence[Sequence[Mapping[str, float]]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs (E,) and the normal/anomalous mean scores (S, E) of one curve's seeds, checked."""
    if not runs or not all(runs):
        raise DataError(f"history {label!r} is empty")
    missing = sorted({key for history in runs for key in HISTORY_KEYS if key not in history[0]})
    if missing:
        raise DataError(
            f"history {label!r} lacks key(s) {missing}: train with a monitor set; "
            f"it has {sorted(runs[0][0])}"
        )
    if len({len(history) for history in runs}) > 1:
        raise DataError(f"the seeds of {label!r} were trained for different numbers of epochs")
    columns = np.array([[[record[key] for record in h] for h in runs] for key in HISTORY_KEYS])
    return columns[0, 0], columns[1], columns[2]


def show_image(axes: Axes, image: Image.Image, title: str) -> None:
    axes.imshow(np.asarray(image.convert("RGB")))
    axes.set_title(title, fontsize="x-small")
    axes.axis("off")


def save_figure(figure: Figure, out_prefix: str | os.PathLike[str]) -> list[Path]:
    """Write ``{prefix}.png`` and ``{prefix}.pdf`` atomically at the figure's fixed size."""
    paths = []
    for extension in ("png", "pdf"):
        path = Path(f"{out_prefix}.{extension}")
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format=extension, dpi=DPI)
        paths.append(path)
    return paths


def draw_score_curves(inputs: Mapping[str, Any], params: Mapping[str, Any], out: Path) -> None:
    """Figures 3/6 of a figure job (:mod:`cap.workflow.figures.score_curves`) from its runs'
    records: each curve's per-epoch test scores over its seeds, to ``out``.png and .pdf."""
    from cap.evaluation.records import read_runs

    runs = {(run["setting"], run["seed"]): run for run in read_runs(inputs["records"])}
    plot_score_curves(
        {
            curve["label"]: [runs[curve["settings"][0], seed]["history"] for seed in curve["seeds"]]
            for curve in params["curves"]
        },
        out,
        title=params["figure"]["title"],
    )


def draw_bank_curves(inputs: Mapping[str, Any], params: Mapping[str, Any], out: Path) -> None:
    """AUROC against the bank size of a figure job (:mod:`cap.workflow.figures.bank_curves`)
    from its runs' records, to ``out``.png and .pdf."""
    from cap.evaluation.records import summarize_records

    plot_bank_curves(
        summarize_records(inputs["records"]),
        {curve["label"]: curve["settings"] for curve in params["curves"]},
        out,
        title=params["figure"]["title"],
    )
