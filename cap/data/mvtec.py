"""MVTec AD in its official layout, with ground-truth masks for the anomaly-map figure.

``<root>/<category>/train/good/*.png``, ``<root>/<category>/test/<defect>/*.png`` and
``<root>/<category>/ground_truth/<defect>/<name>_mask.png``. Labels: 0 = good,
1 = defect; each image also keeps its defect type. The licence forbids
redistribution, so users download the dataset themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from cap.data.base import IMAGE_READ_ERRORS, ImageDataset
from cap.data.tree import open_image_file
from cap.utils.errors import ConfigError, DataError, MissingResourceError

MVTEC_CATEGORIES: tuple[str, ...] = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip
MVTEC_CLASSES: tuple[str, ...] = ("good", "defect")
MVTEC_URL = "https://www.mvtec.com/company/research/datasets/mvtec-ad"
#: Folder name of the official archive, accepted between the root and the categories.
ARCHIVE_FOLDER = "mvtec_anomaly_detection"
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg"})


def category_folder(root: Path, category: str) -> Path:
    """``<root>/<category>``, also inside the archive's top folder; errors say what to do."""
    for base in (root, root / ARCHIVE_FOLDER):
        if (base / category / "train").is_dir() or (base / category / "test").is_dir():
            return base / category
    present = sorted(
        path.name
        for base in (root, root / ARCHIVE_FOLDER)
        if base.is_dir()
        for path in base.iterdir()
        if (path / "train").is_dir()
    )
    if category not in MVTEC_CATEGORIES and category not in present:
        raise ConfigError(
            f"unknown MVTec category {category!r}; valid: {', '.join(MVTEC_CATEGORIES)}"
            + (f" (found in {root}: {', '.join(present)})" if present else "")
        )
    raise MissingResourceError(
        f"MVTec AD category {category!r} not found: expected {root / category}/train/good "
        f"(or under {root / ARCHIVE_FOLDER}). MVTec AD cannot be downloaded automatically "
        f"(licence): download it yourself from {MVTEC_URL}, extract it and point the data "
        f"root at the folder holding the category folders."
    )


class DefectDataset(ImageDataset):
    """One split of one category of an MVTec-style dataset: good or defective images, each
    with its defect type (its folder) and, in the test split, a ground-truth mask."""

    has_masks = True

    def __init__(
        self, name: str, split: str, category: str, ids: list[str], defect_types: list[str]
    ) -> None:
        super().__init__(
            name=name,
            split=split,
            ids=ids,
            labels=[int(defect != "good") for defect in defect_types],
            class_names=MVTEC_CLASSES,
        )
        self.category = category
        self.defect_types = defect_types


class MVTecDataset(DefectDataset):
    """One split of one MVTec AD category; ids are paths relative to the category folder."""

    def __init__(self, root: str | os.PathLike[str], split: str, *, category: str) -> None:
        self.folder = category_folder(Path(root).expanduser(), category)
        split_folder = self.folder / split
        if not split_folder.is_dir():
            raise MissingResourceError(f"MVTec AD {category}: missing folder {split_folder}")
        ids: list[str] = []
        defect_types: list[str] = []
        for defect_folder in sorted(path for path in split_folder.iterdir() if path.is_dir()):
            images = sorted(
                path.name
                for path in defect_folder.iterdir()
                if path.suffix.lower() in IMAGE_SUFFIXES
            )
            if not images:
                raise DataError(f"MVTec AD {category}: folder {defect_folder} holds no image")
            ids.extend(f"{split}/{defect_folder.name}/{image}" for image in images)
            defect_types.extend([defect_folder.name] * len(images))
        if not ids:
            raise DataError(f"MVTec AD {category}: {split_folder} has no <defect>/ image folders")
        super().__init__("mvtec", split, category, ids, defect_types)

    def _load(self, index: int) -> Image.Image:
        return open_image_file(self.folder / self.ids[index])

    def source(self, index: int) -> str:
        return str(self.folder / self.ids[index])

    def mask_path(self, index: int) -> Path | None:
        """The ground-truth mask file of image ``index`` (None for good images)."""
        if self.labels[index] == 0:
            return None
        _, defect, image = self.ids[index].split("/")
        return self.folder / "ground_truth" / defect / f"{Path(image).stem}_mask.png"

    def mask(self, index: int) -> np.ndarray:
        """Defect mask of shape (H, W), bool, at the image's resolution (all False if good)."""
        path = self.mask_path(index)
        if path is None:
            with self._load(index) as image:  # reads the header only
                width, height = image.size
            return np.zeros((height, width), dtype=bool)
        if not path.is_file():
            raise MissingResourceError(f"MVTec AD {self.category}: mask {path} is missing")
        try:
            with open_image_file(path) as mask:
                return np.asarray(mask.convert("L")) > 0
        except DataError:
            raise
        except IMAGE_READ_ERRORS as error:
            raise DataError(f"cannot read mask {path}: {error}") from error
