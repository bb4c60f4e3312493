"""CIFAR-10 and CIFAR-100 (20 coarse superclasses) through torchvision."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cap.data.base import ImageDataset
from cap.utils.errors import DataError, MissingResourceError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

#: CIFAR-100 fine label → coarse superclass, as in the released CAP code (and PANDA).
CIFAR100_FINE_TO_COARSE: tuple[int, ...] = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)  # fmt: skip

CIFAR100_COARSE_CLASSES: tuple[str, ...] = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)  # fmt: skip


@dataclass(frozen=True)
class CifarSource:
    """Where torchvision keeps one CIFAR variant."""

    title: str  # human-readable name for messages
    folder: str  # folder torchvision extracts under the root
    url: str  # the archive torchvision downloads
    torchvision_class: str  # class name in torchvision.datasets


SOURCES: dict[str, CifarSource] = {
    "cifar10": CifarSource(
        "CIFAR-10", "cifar-10-batches-py",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "CIFAR10",
    ),
    "cifar100": CifarSource(
        "CIFAR-100", "cifar-100-python",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "CIFAR100",
    ),
}  # fmt: skip


def _resolve_root(name: str, root: Path) -> Path:
    """The folder that holds ``source.folder``; accepts that folder itself as ``root``."""
    source = SOURCES[name]
    if root.name == source.folder and root.is_dir():
        return root.parent
    if (root / source.folder).is_dir():
        return root
    raise MissingResourceError(
        f"{source.title} not found: expected the folder {root / source.folder}. Obtain it "
        f"on a machine with network access with `load_dataset({name!r}, ROOT, split, "
        f"download=True)` into a new folder (or the workflow's fetch rule), or extract "
        f"{source.url} into {root}."
    )


class CifarDataset(ImageDataset):
    """One CIFAR split; ids are the image's index in torchvision's split.

    CIFAR-100 labels are the 20 coarse superclasses (:data:`CIFAR100_FINE_TO_COARSE`).
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str],
        split: str,
    ) -> None:
        import torchvision.datasets

        source = SOURCES[name]
        root = _resolve_root(name, Path(root).expanduser())
        loader = getattr(torchvision.datasets, source.torchvision_class)
        try:
            data = loader(root=str(root), train=split == "train", download=False)
        except RuntimeError as error:  # torchvision's checksum test failed
            raise DataError(
                f"{source.title} in {root / source.folder} is unreadable: {error}"
            ) from error
        self.images: np.ndarray = data.data  # (N, 32, 32, 3) uint8
        labels = np.asarray(data.targets, dtype=np.int64)
        if name == "cifar100":
            labels = np.asarray(CIFAR100_FINE_TO_COARSE, dtype=np.int64)[labels]
        super().__init__(
            name=name,
            split=split,
            ids=[str(index) for index in range(len(labels))],
            labels=labels,
            class_names=list(CIFAR10_CLASSES if name == "cifar10" else CIFAR100_COARSE_CLASSES),
        )

    def _load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index])
