"""The one-class protocol: which embeddings form the normal bank and which are anomalies.

Semantic benchmarks (CIFAR-10/100, Fashion-MNIST, image folders) train on the
training images of one *normal class* and test on the whole test split, label 1 =
any other class. MVTec AD ships one folder per category whose training images are
all defect-free, so there the bank is the whole training split and the test labels
(0 = good, 1 = defect) are already the anomaly labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cap.evaluation.embeddings import Embeddings, load_embeddings
from cap.utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    from cap.evaluation.jobs import TaskSpec


@dataclass(frozen=True)
class OneClassTask:
    """Features of one normal class against the whole test split.

    N = normal training items (the memory bank), M = test items, D = feature dim.
    """

    bank: np.ndarray  # (N, D) float32 features of normal training images
    bank_ids: list[str]  # (N,) image ids of the bank rows
    test: np.ndarray  # (M, D) float32 features of all test images
    test_ids: list[str]  # (M,) image ids of the test rows
    test_labels: np.ndarray  # (M,) int64 labels in the dataset's own class space
    is_anomaly: np.ndarray  # (M,) int64, 1 = anomaly, 0 = normal
    normal_class_name: str  # the normal class's name (MVTec AD: the category)
    bank_patches: tuple[np.ndarray, ...] = ()  # per patch layer (N, h_l, w_l, C_l), if read
    test_patches: tuple[np.ndarray, ...] = ()  # per patch layer (M, h_l, w_l, C_l), if read
    test_masks: np.ndarray | None = None  # (M, S, S) bool defect masks, where the data has them
    test_maps: np.ndarray | None = None  # (M, h, w, D) last feature maps, where all were kept


def one_class_task(
    train: Embeddings, test: Embeddings, normal_class: int | None, bank_size: int | None = None
) -> OneClassTask:
    """Select the bank and the anomaly labels for ``normal_class``.

    ``normal_class=None`` means the training split is all normal (MVTec AD): the
    test labels are used as anomaly labels directly. ``bank_size`` keeps the first
    N normal training images, in the dataset's order (nested subsets: the bank of a
    smaller N is a prefix of a larger one's).
    """
    if train.features.shape[1] != test.features.shape[1]:
        raise DataError(
            f"train and test embeddings differ in dimension: "
            f"{train.features.shape[1]} vs {test.features.shape[1]}"
        )
    runtimes = [split.attrs.get("runtime", "none recorded") for split in (train, test)]
    if runtimes[0] != runtimes[1]:  # features alike to ~1e-5, but not one network's
        raise DataError(
            f"train and test embeddings were made by different runtimes ({runtimes[0]} vs "
            f"{runtimes[1]}): embed both alike (the backbone's options.runtime)"
        )
    if normal_class is None:
        in_bank = np.ones(len(train.labels), dtype=bool)
        is_anomaly = (test.labels != 0).astype(np.int64)
    else:
        if not (train.labels == normal_class).any():
            classes = ", ".join(f"{i} ({name})" for i, name in enumerate(train.class_names))
            raise ConfigError(
                f"normal class {normal_class} has no training images; the dataset's classes: "
                f"{classes}"
            )
        in_bank = train.labels == normal_class
        is_anomaly = (test.labels != normal_class).astype(np.int64)
    present = sorted(set(is_anomaly.tolist()))
    if present != [0, 1]:
        holds = f"only label {present[0]}" if present else "no image"
        raise DataError(
            "the test split must hold both normal and anomalous images to measure AUROC; "
            f"it holds {holds}"
        )
    if bank_size is not None:
        available = int(in_bank.sum())
        if not 1 <= bank_size <= available:
            raise ConfigError(
                f"bank_size {bank_size} needs between 1 and the {available} normal training "
                "images there are"
            )
        in_bank &= np.cumsum(in_bank) <= bank_size
    return OneClassTask(
        bank_patches=tuple(layer[in_bank] for layer in train.patch_maps),
        test_patches=test.patch_maps,
        test_masks=test.masks,
        test_maps=_every_map(test),
        bank=train.features[in_bank],
        bank_ids=[i for i, keep in zip(train.ids, in_bank, strict=True) if keep],
        test=test.features,
        test_ids=list(test.ids),
        test_labels=test.labels,
        is_anomaly=is_anomaly,
        normal_class_name=_class_name(train, test, normal_class),
    )


def _every_map(embeddings: Embeddings) -> np.ndarray | None:
    """The last feature maps in row order (M, h, w, D), where every row's was kept."""
    if embeddings.feature_maps is None or set(embeddings.feature_map_ids) != set(embeddings.ids):
        return None
    row = {identifier: row for row, identifier in enumerate(embeddings.feature_map_ids)}
    return embeddings.feature_maps[[row[identifier] for identifier in embeddings.ids]]


def _class_name(train: Embeddings, test: Embeddings, normal_class: int | None) -> str:
    """The normal class's name: MVTec's category, else the dataset's name for the id
    (the id itself where the file lists no names)."""
    if normal_class is None:
        return str(test.attrs.get("category", ""))
    names = train.class_names
    return names[normal_class] if 0 <= normal_class < len(names) else str(normal_class)


def load_task(
    spec: TaskSpec, *, feature_maps: bool | None = None, patch_maps: bool = False
) -> tuple[OneClassTask, Embeddings]:
    """Read the two embedding files of a job's task (refusing another backbone's) and split
    them as ``spec`` says.

    Only the normal class's training rows are read (the first ``bank_size`` of them
    form the bank when given). The test embeddings come back too, with their feature
    maps when asked (the anomaly maps draw them; ``None``: where the test split has defect
    masks); ``patch_maps`` reads both splits' patch layers (for patch-level methods).
    """
    test = load_embeddings(
        spec.test_embeddings,
        expect_backbone=spec.backbone,
        feature_maps=feature_maps,
        patch_maps=patch_maps,
    )
    train = load_embeddings(
        spec.train_embeddings,
        expect_backbone=spec.backbone,
        label=spec.normal_class,
        feature_maps=False,
        patch_maps=patch_maps,
    )
    return one_class_task(train, test, spec.normal_class, spec.bank_size), test
