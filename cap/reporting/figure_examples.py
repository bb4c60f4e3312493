"""Examples for the attention and anomaly-map figures, built from a trained run's files.

The workflow's figure scripts load a trained CAP detector, its task (bank and test split) and
neighbours with :func:`load_trained_run`, pick the images to show here, and hand
the examples to :mod:`cap.reporting.figures`. Rows of ``task.test`` are the rows of the test
embedding file, so one position ``i`` indexes features, ids, labels and
neighbours alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cap.data.transforms import DEFAULT_PREPROCESSING
from cap.reporting.figures import (
    AnomalyMapExample,
    AttentionExample,
    anomaly_map,
    plot_anomaly_maps,
    plot_attention,
)
from cap.utils.errors import DataError

if TYPE_CHECKING:
    from cap.data.base import ImageDataset
    from cap.evaluation.embeddings import Embeddings
    from cap.evaluation.jobs import TaskSpec
    from cap.evaluation.neighbors import Neighbors
    from cap.evaluation.protocol import OneClassTask

#: The files of a model figure's job that :func:`load_trained_run` reads beside its task's.
RUN_INPUTS: tuple[str, ...] = ("model", "neighbors")
#: How many normal test items (the first ones) compete to appear in the attention figure.
ATTENTION_CANDIDATES = 256


@dataclass(frozen=True)
class TrainedRun:
    """What a figure of one trained CAP run needs besides the images."""

    detector: Any  # a fitted CAPDetector
    task: OneClassTask  # bank and test features of the normal class
    neighbors: Neighbors  # precomputed bank neighbours (k_max columns)
    test_embeddings: Embeddings  # the test file, with its feature maps


def load_trained_run(
    *, model: str | os.PathLike[str], neighbors: str | os.PathLike[str], task: TaskSpec
) -> TrainedRun:
    """Load a run's task (with the test split's feature maps), its neighbours and its
    CAPDetector saved without the bank, checking that the model was trained on this bank."""
    from cap.detectors import CAPDetector
    from cap.evaluation.runs import load_run_inputs

    inputs, test_embeddings = load_run_inputs(task, neighbors, feature_maps=True)
    return TrainedRun(
        detector=CAPDetector.load(model, bank=inputs.task.bank, provenance=inputs.provenance),
        task=inputs.task,
        neighbors=inputs.neighbors,
        test_embeddings=test_embeddings,
    )


def load_figure_run(inputs: Mapping[str, Any], params: Mapping[str, Any]) -> TrainedRun:
    """The trained run a model figure's job draws, from the job's files (:data:`RUN_INPUTS`)
    and its ``task`` parameter (a :class:`TaskSpec` as plain data)."""
    from cap.evaluation.jobs import TaskSpec, from_dict

    return load_trained_run(
        **{key: inputs[key] for key in RUN_INPUTS},
        task=from_dict(TaskSpec, params["task"], where="params.task"),
    )


def draw_attention(inputs: Mapping[str, Any], params: Mapping[str, Any], out: Path) -> None:
    """Figures 2/7 of a figure job (:mod:`cap.workflow.figures.attention`): nearest normal
    images and their attention weights, to ``out``.png and .pdf."""
    run = load_figure_run(inputs, params)
    options = params["figure"]["options"]
    examples = attention_examples(
        run.detector,
        run.task,
        run.neighbors,
        load_images(params["dataset"], "train"),
        load_images(params["dataset"], "test"),
        n_examples=options["n_examples"],
        n_neighbors=options["n_neighbors"],
    )
    plot_attention(examples, out)


def draw_anomaly_maps(inputs: Mapping[str, Any], params: Mapping[str, Any], out: Path) -> None:
    """Figures 4/5 of a figure job (:mod:`cap.workflow.figures.anomaly_maps`): anomaly maps
    over test images (and defect masks), to ``out``.png and .pdf."""
    run = load_figure_run(inputs, params)
    examples = anomaly_map_examples(
        run.detector,
        run.task,
        run.neighbors,
        run.test_embeddings,
        load_images(params["dataset"], "test"),
        n_examples=params["figure"]["options"]["n_examples"],
    )
    plot_anomaly_maps(examples, out)


def load_images(dataset: Mapping[str, Any], split: str) -> ImageDataset:
    """One split of the images behind a run: ``dataset`` = {"source", "root", "category"}."""
    from cap.data import load_dataset

    return load_dataset(dataset["source"], dataset["root"], split, category=dataset.get("category"))


def attention_examples(
    detector: Any,
    task: OneClassTask,
    neighbors: Neighbors,
    train_images: ImageDataset,
    test_images: ImageDataset,
    *,
    n_examples: int,
    n_neighbors: int = 8,
) -> list[AttentionExample]:
    """Normal test images whose neighbours the reformed attention weighs most unevenly.

    Among the first :data:`ATTENTION_CANDIDATES` normal test items, the
    ``n_examples`` whose attention weights (over all k neighbours) lie furthest
    from uniform in total variation are shown, in test order; the choice is
    deterministic. Each shows its first ``n_neighbors`` of the k neighbours.
    """
    k = _neighbor_count(detector, neighbors)
    candidates = np.flatnonzero(task.is_anomaly == 0)[:ATTENTION_CANDIDATES]  # (C,)
    if len(candidates) == 0:
        raise DataError("the test split holds no normal images to show")
    weights = detector.neighbor_weights(
        task.test[candidates], neighbors=neighbors.test_indices[candidates, :k]
    )  # (C, k)
    distance = 0.5 * np.abs(weights - 1.0 / k).sum(axis=1)  # (C,) total variation from uniform
    chosen = np.sort(np.argsort(-distance, kind="stable")[:n_examples])
    shown = min(n_neighbors, k)
    examples = []
    for c in chosen:
        i = candidates[c]
        bank_rows = neighbors.test_indices[i, :shown]
        examples.append(
            AttentionExample(
                test_image=test_images[test_images.index_of(task.test_ids[i])][0],
                neighbor_images=[
                    train_images[train_images.index_of(task.bank_ids[j])][0] for j in bank_rows
                ],
                weights_attention=np.asarray(weights[c, :shown]),
                weights_uniform=np.full(shown, 1.0 / k),
                title="\n".join(task.test_ids[i].rsplit("/", 1)),  # fits the narrow column
            )
        )
    return examples


def anomaly_map_examples(
    detector: Any,
    task: OneClassTask,
    neighbors: Neighbors,
    test_embeddings: Embeddings,
    test_images: ImageDataset,
    *,
    n_examples: int,
) -> list[AnomalyMapExample]:
    """Normal and anomalous test images with their anomaly maps (§4.6, Figs. 4–5).

    Only images whose feature map was stored qualify. Half the rows (rounded up)
    are the first normal ones; the rest are anomalies taken in turn from each
    anomaly type (MVTec defect type, else class), so that the figure shows
    several; a short group is filled from the other. Images and masks are resized and
    cropped as the embeddings' preprocessing did, so that the map lies over what the
    backbone saw.
    """
    from cap.data.transforms import get_preprocessing, transform_mask

    preprocessing = test_embeddings.attrs.get("preprocessing", DEFAULT_PREPROCESSING)
    show = get_preprocessing(preprocessing)  # the pixels the backbone saw

    if test_embeddings.feature_maps is None or not test_embeddings.feature_map_ids:
        raise DataError(
            "the test embeddings hold no feature maps: extract them to draw anomaly maps"
        )
    map_row = {identifier: row for row, identifier in enumerate(test_embeddings.feature_map_ids)}
    rows = _pick_map_rows(task, test_embeddings, set(map_row), n_examples)
    k = _neighbor_count(detector, neighbors)
    queries, query_neighbors = task.test[rows], neighbors.test_indices[rows, :k]
    _, z_hat_n = detector.project(queries, neighbors=query_neighbors)  # (n, D)
    scores = detector.anomaly_score(queries, neighbors=query_neighbors)  # (n,) eq. (8)
    examples = []
    for position, i in enumerate(rows):
        index = test_images.index_of(task.test_ids[i])
        mask = test_images.mask(index)
        feature_map = test_embeddings.feature_maps[map_row[task.test_ids[i]]]  # (7, 7, D)
        kind = "anomaly" if task.is_anomaly[i] else "normal"
        examples.append(
            AnomalyMapExample(
                image=show(test_images[index][0]),
                heatmap=anomaly_map(task.test[i], z_hat_n[position], feature_map),
                mask=None if mask is None else transform_mask(mask, preprocessing=preprocessing),
                title=f"{kind}: {_group_name(test_embeddings, i)}, s = {scores[position]:.3f}",
            )
        )
    return examples


def _neighbor_count(detector: Any, neighbors: Neighbors) -> int:
    k = int(detector.k)
    if k > neighbors.k_max:
        raise DataError(
            f"the detector uses k={k} neighbours but only {neighbors.k_max} were searched"
        )
    return k


def _pick_map_rows(
    task: OneClassTask, embeddings: Embeddings, with_maps: set[str], n_examples: int
) -> np.ndarray:
    """Test rows to show: normal ones first, then anomalies round-robin over their groups."""
    eligible = np.array(
        [i for i, identifier in enumerate(task.test_ids) if identifier in with_maps]
    )
    if len(eligible) == 0:
        raise DataError("no test image has a stored feature map")
    normal = eligible[task.is_anomaly[eligible] == 0]
    anomalous = _round_robin(eligible[task.is_anomaly[eligible] == 1], embeddings)
    n_normal = min(len(normal), max(n_examples - len(anomalous), (n_examples + 1) // 2))
    return np.concatenate([normal[:n_normal], anomalous[: n_examples - n_normal]]).astype(np.int64)


def _round_robin(rows: np.ndarray, embeddings: Embeddings) -> np.ndarray:
    """``rows`` reordered so that the first of every group come first, then the second, ..."""
    seen: dict[str, int] = {}
    rank = []
    for i in rows:
        group = _group_name(embeddings, i)
        rank.append(seen.get(group, 0))
        seen[group] = rank[-1] + 1
    return rows[np.lexsort((rows, rank))] if len(rows) else rows


def _group_name(embeddings: Embeddings, i: int) -> str:
    if embeddings.defect_type is not None:
        return embeddings.defect_type[i]
    return embeddings.class_names[int(embeddings.labels[i])]
