"""The neighbour file of a run: each bank item's and each test item's nearest bank items.

They are searched once per (dataset, class) at the largest K any experiment needs
(with :func:`cap.detectors.search.knn_search`) and stored with :func:`save_neighbors`;
every K ablation slices the first K columns.

Shapes: N = bank items, M = test items.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from cap.detectors.search import knn_search
from cap.evaluation.protocol import OneClassTask
from cap.utils.errors import ConfigError
from cap.utils.io import atomic_path


@dataclass(frozen=True)
class Neighbors:
    """Top-``k_max`` cosine neighbours in the bank, sorted by decreasing similarity."""

    train_indices: np.ndarray  # (N, k_max) int64, bank rows, self excluded
    test_indices: np.ndarray  # (M, k_max) int64, bank rows

    @property
    def k_max(self) -> int:
        return int(self.train_indices.shape[1])


def search_task_neighbors(task: OneClassTask, k_max: int) -> Neighbors:
    """Search the bank once for train (self excluded) and test neighbours."""
    if k_max >= len(task.bank):
        raise ConfigError(
            f"k_max={k_max} needs at least {k_max + 1} normal training images, "
            f"the bank has {len(task.bank)}: lower the largest K or use more images"
        )
    _, train_indices = knn_search(task.bank, k=k_max)
    _, test_indices = knn_search(task.bank, task.test, k=k_max)
    return Neighbors(train_indices=train_indices, test_indices=test_indices)


def save_neighbors(path: str | os.PathLike[str], neighbors: Neighbors, **attrs: object) -> None:
    """Write the neighbour indices to HDF5 atomically."""
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.create_dataset("train_indices", data=neighbors.train_indices)
        handle.create_dataset("test_indices", data=neighbors.test_indices)
        for key, value in attrs.items():
            handle.attrs[key] = "" if value is None else value


def load_neighbors(path: str | os.PathLike[str], *, k: int | None = None) -> Neighbors:
    """Read neighbour indices, keeping the first ``k`` columns when given."""
    with h5py.File(path, "r") as handle:
        train_indices = handle["train_indices"][()]
        test_indices = handle["test_indices"][()]
    if k is not None:
        if k > train_indices.shape[1]:
            raise ConfigError(
                f"K={k} exceeds the {train_indices.shape[1]} neighbours searched in {path}: "
                "raise k_max in the config"
            )
        train_indices, test_indices = train_indices[:, :k], test_indices[:, :k]
    return Neighbors(train_indices=train_indices, test_indices=test_indices)
