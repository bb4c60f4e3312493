"""The dataset interface every loader implements: indexed RGB images with labels.

A dataset object is one *split* of one dataset, with all its classes; the
one-class protocol (train on the normal class only, test on everything, label 1 =
any other class) is applied later on the cached embeddings, so that one
extraction serves every normal class.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
from PIL import Image

from cap.utils.errors import ConfigError, DataError

#: The splits of every dataset: the normal bank comes from ``train``, scores from ``test``.
SPLITS: tuple[str, ...] = ("train", "test")
#: Errors Pillow raises for truncated, corrupt or unsupported image files.
IMAGE_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
)


class ImageDataset(abc.ABC):
    """One split of an image dataset; ``dataset[i]`` is ``(PIL RGB image, label)``.

    Attributes
    ----------
    name : str
        Registry name of the dataset (``"cifar10"``, ``"mvtec"``, ...).
    split : str
        ``"train"`` or ``"test"``.
    ids : list of str
        One stable identifier per image (a relative file path or an index), so
        that later steps can reload the exact image with :meth:`index_of`.
    labels : ndarray of shape (N,), int64
        Class index into ``class_names``.
    class_names : list of str
        The dataset's class space (CIFAR-100: the 20 coarse superclasses;
        MVTec: ``["good", "defect"]``).
    defect_types : list of str or None
        MVTec only: the defect folder of each image (``"good"`` for normal ones).
    category : str or None
        MVTec only: the object or texture category.
    """

    defect_types: list[str] | None = None
    category: str | None = None
    has_masks: bool = False  # ground-truth defect masks of the test images (:meth:`mask`)

    def __init__(
        self,
        *,
        name: str,
        split: str,
        ids: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        class_names: Sequence[str],
    ) -> None:
        self.name = name
        self.split = split
        self.ids = [str(identifier) for identifier in ids]
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.class_names = list(class_names)
        if len(self.ids) != len(self.labels):
            raise DataError(f"{name} {split}: {len(self.ids)} ids but {len(self.labels)} labels")
        if len(self.labels) and not 0 <= self.labels.min() <= self.labels.max() < len(
            self.class_names
        ):
            raise DataError(
                f"{name} {split}: labels span {self.labels.min()}..{self.labels.max()}, "
                f"outside the {len(self.class_names)} classes {self.class_names}"
            )
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.image(index), int(self.labels[index])

    def image(self, index: int) -> Image.Image:
        """Decode image ``index`` as RGB; a corrupt file raises DataError naming it."""
        try:
            image = self._load(index)
            image.load()
            return image if image.mode == "RGB" else image.convert("RGB")
        except DataError:
            raise
        except IMAGE_READ_ERRORS as error:
            raise DataError(f"cannot read image {self.source(index)}: {error}") from error

    @abc.abstractmethod
    def _load(self, index: int) -> Image.Image:
        """Open image ``index`` in any mode; :meth:`image` decodes and converts it."""

    def source(self, index: int) -> str:
        """Where image ``index`` comes from, for error messages (a path where there is one)."""
        return f"{self.name} {self.split} #{self.ids[index]}"

    def mask(self, index: int) -> np.ndarray | None:
        """Ground-truth defect mask of shape (H, W), bool, where the dataset has masks."""
        return None

    def index_of(self, identifier: str) -> int:
        """Position of the image whose id is ``identifier`` (the inverse of ``ids``)."""
        if self._index is None:
            self._index = {identifier: position for position, identifier in enumerate(self.ids)}
        try:
            return self._index[identifier]
        except KeyError:
            raise ConfigError(
                f"{self.name} {self.split} has no image with id {identifier!r} "
                f"(ids look like {self.ids[:3]})"
            ) from None

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageDataset:
        """A view on the images at ``indices``, in that order, with the same class space."""
        return SubsetDataset(self, indices)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, "
            f"images={len(self)}, classes={len(self.class_names)})"
        )


class SubsetDataset(ImageDataset):
    """Images of a parent dataset at chosen positions (see :meth:`ImageDataset.subset`)."""

    def __init__(self, parent: ImageDataset, indices: Sequence[int] | np.ndarray) -> None:
        self.parent = parent
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        super().__init__(
            name=parent.name,
            split=parent.split,
            ids=[parent.ids[i] for i in self.indices],
            labels=parent.labels[self.indices],
            class_names=parent.class_names,
        )
        self.category = parent.category
        self.has_masks = parent.has_masks
        if parent.defect_types is not None:
            self.defect_types = [parent.defect_types[i] for i in self.indices]

    def _load(self, index: int) -> Image.Image:
        return self.parent._load(int(self.indices[index]))

    def source(self, index: int) -> str:
        return self.parent.source(int(self.indices[index]))

    def mask(self, index: int) -> np.ndarray | None:
        return self.parent.mask(int(self.indices[index]))
