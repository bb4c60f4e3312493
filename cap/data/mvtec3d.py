"""MVTec 3D-AD (Bergmann et al., VISAPP 2022), its RGB images and ground-truth masks, one
category at a time; the 3-D point clouds (``xyz``) are not read.

The dataset's layout, in a folder or a zip (the download's ``mvtec_3d_anomaly_detection``
folder may wrap it)::

    <category>/train/good/rgb/NNN.png
    <category>/validation/good/rgb/NNN.png
    <category>/test/<defect>/rgb/NNN.png   with its mask  <category>/test/<defect>/gt/NNN.png

Labels: 0 = good, 1 = defect; each image keeps its defect type. The normal training
images form the bank; the validation images join it only on request
(``validation_in_bank``), as the dataset's protocol leaves them out. Every test image has
a mask of its own size (all zero for good ones). The licence (CC BY-NC-SA 4.0) forbids
redistribution: users download the dataset from MVTec.
"""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np
from PIL import Image

from cap.data.base import IMAGE_READ_ERRORS
from cap.data.mvtec import DefectDataset
from cap.data.tree import FileTree, ignored
from cap.utils.errors import ConfigError, DataError, MissingResourceError

MVTEC3D_CATEGORIES: tuple[str, ...] = (
    "bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope",
    "tire",
)  # fmt: skip
MVTEC3D_URL = "https://www.mvtec.com/company/research/datasets/mvtec-3d-ad"
#: The folder of the official archive, accepted between the root and the categories.
ARCHIVE_FOLDER = "mvtec_3d_anomaly_detection"
LAYOUT = "<root>/<category>/{train,validation,test}/<defect>/rgb/*.png, masks in .../gt/"


class MVTec3DDataset(DefectDataset):
    """One split of one MVTec 3D-AD category; ids are paths relative to the category."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        *,
        category: str,
        validation_in_bank: bool = False,
    ) -> None:
        if category not in MVTEC3D_CATEGORIES:
            raise ConfigError(
                f"unknown MVTec 3D-AD category {category!r}; valid: {', '.join(MVTEC3D_CATEGORIES)}"
            )
        try:
            self.tree = FileTree(root, LAYOUT)
        except MissingResourceError as error:
            raise MissingResourceError(
                f"MVTec 3D-AD not found: {error}. It cannot be downloaded automatically "
                f"(licence): download it from {MVTEC3D_URL} and point the dataset's resource "
                "at the extracted folder (or the zip of a category)"
            ) from error
        self.prefix = _category_prefix(self.tree, category)
        splits = ("train", "validation") if split == "train" and validation_in_bank else (split,)
        ids = [path for part in splits for path in self._images(part)]
        super().__init__("mvtec3d", split, category, ids, [path.split("/")[1] for path in ids])
        if split == "test":
            missing = [i for i in self.ids if self._mask_id(i) not in self._files]
            if missing:
                raise DataError(
                    f"MVTec 3D-AD {category}: image {self.tree.source(self.prefix + missing[0])} "
                    f"has no mask at {self.tree.source(self.prefix + self._mask_id(missing[0]))} "
                    f"({len(missing)} image(s) without one)"
                )

    @cached_property
    def _files(self) -> set[str]:
        """The category's files, relative to it."""
        return {
            path[len(self.prefix) :] for path in self.tree.files if path.startswith(self.prefix)
        }

    def _images(self, split: str) -> list[str]:
        """``<split>/<defect>/rgb/<name>.png`` of every image of a split, sorted; every
        ``<split>/<defect>`` folder must hold some (an empty one would drop a defect type)."""
        folder = f"{self.prefix}{split}"
        if folder not in self.tree.folders:
            raise DataError(f"MVTec 3D-AD {self.tree.source(folder)} is missing; expected {LAYOUT}")
        images = sorted(
            path
            for path in self._files
            if path.startswith(f"{split}/")
            and path.count("/") == 3
            and path.split("/")[2] == "rgb"
            and path.lower().endswith(".png")
            and not any(ignored(part) for part in path.split("/"))
        )
        defects = sorted(
            path.split("/")[-1]
            for path in self.tree.folders
            if path.startswith(f"{folder}/")
            and path.count("/") == folder.count("/") + 1
            and not ignored(path.split("/")[-1])
        )
        for defect in defects:
            if not any(path.startswith(f"{split}/{defect}/rgb/") for path in images):
                raise DataError(
                    f"MVTec 3D-AD {self.tree.source(f'{folder}/{defect}/rgb')} holds no .png "
                    f"image; expected {LAYOUT}"
                )
        if not images:
            raise DataError(
                f"MVTec 3D-AD {self.tree.source(folder)} holds no image; expected {LAYOUT}"
            )
        return images

    @staticmethod
    def _mask_id(identifier: str) -> str:
        split, defect, _, name = identifier.split("/")
        return f"{split}/{defect}/gt/{name}"

    def _load(self, index: int) -> Image.Image:
        return self.tree.open_image(self.prefix + self.ids[index])

    def source(self, index: int) -> str:
        return self.tree.source(self.prefix + self.ids[index])

    def mask(self, index: int) -> np.ndarray:
        """Defect mask of shape (H, W), bool, at the image's resolution (all False if good:
        the training and validation images, which have no mask file); a mask of another size
        than its image is refused."""
        if not self.ids[index].startswith("test/"):
            width, height = self._size(index)
            return np.zeros((height, width), dtype=bool)
        path = self.prefix + self._mask_id(self.ids[index])
        try:
            with self.tree.open_image(path) as mask:
                size = mask.size
                pixels = np.asarray(mask.convert("L"))  # (H, W)
        except DataError:
            raise
        except IMAGE_READ_ERRORS as error:
            raise DataError(f"cannot read mask {self.tree.source(path)}: {error}") from error
        width, height = self._size(index)
        if size != (width, height):
            raise DataError(
                f"mask {self.tree.source(path)} is {size[0]}x{size[1]} but its image "
                f"{self.source(index)} is {width}x{height}"
            )
        return pixels > 0

    def _size(self, index: int) -> tuple[int, int]:
        """(width, height) of image ``index``, from its header."""
        try:
            with self._load(index) as image:
                return image.size
        except DataError:
            raise
        except IMAGE_READ_ERRORS as error:
            raise DataError(f"cannot read image {self.source(index)}: {error}") from error


def _category_prefix(tree: FileTree, category: str) -> str:
    """``<category>/``, or the archive folder's, where the tree holds the category."""
    for prefix in (f"{category}/", f"{ARCHIVE_FOLDER}/{category}/"):
        if prefix.rstrip("/") in tree.folders:
            return prefix
    present = sorted(  # relative paths: a category one folder too deep shows where it is
        folder for folder in tree.folders if folder.split("/")[-1] in MVTEC3D_CATEGORIES
    )
    raise MissingResourceError(
        f"MVTec 3D-AD category {category!r} is not in {tree.root}"
        + (f" (it holds: {', '.join(present)})" if present else "")
        + f"; expected {LAYOUT}. Download it from {MVTEC3D_URL}"
    )
