"""Dataset registry: every dataset is a name, a loader and its class names.

>>> train = load_dataset("imagefolder", "resources/data/cifar10-jpg.zip", "train")
>>> image, label = train[0]  # PIL RGB image, int in range(len(train.class_names))

Adding a dataset is one entry in :data:`DATASETS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cap.data.base import SPLITS, ImageDataset
from cap.data.cifar import CIFAR10_CLASSES, CIFAR100_COARSE_CLASSES, CifarDataset
from cap.data.fmnist import FMNIST_CLASSES, FashionMNISTDataset
from cap.data.imagefolder import ImageFolderDataset
from cap.data.mvtec import MVTEC_CATEGORIES, MVTEC_CLASSES, MVTecDataset
from cap.data.mvtec3d import MVTEC3D_CATEGORIES, MVTec3DDataset
from cap.utils.errors import ConfigError
from cap.utils.resources import TORCHVISION_DATASETS, fetch_resource

__all__ = ["DATASETS", "SPLITS", "ImageDataset", "list_classes", "load_dataset"]

Root = str | os.PathLike[str]
#: (root, split, category, **options) → one split of the dataset.
Loader = Callable[..., ImageDataset]
#: (root or None, category or None) → class names in label order.
ClassNames = Callable[[Path | None, str | None], Sequence[str]]


@dataclass(frozen=True)
class DatasetEntry:
    """How to load one dataset and name its classes."""

    load: Loader  # builds one split
    classes: ClassNames  # class names without loading images where possible
    description: str  # one line for help texts
    per_category: bool = False  # each category has its own train/test folders (MVTec AD)
    fixed_classes: bool = True  # the class list is known without the data (not imagefolder)
    options: frozenset[str] = frozenset()  # the loader's own keyword options
    has_masks: bool = False  # ground-truth defect masks of its test images


def _imagefolder_classes(root: Path | None, category: str | None) -> Sequence[str]:
    if root is None:
        raise ConfigError("imagefolder class names come from its folders: give the data root")
    return ImageFolderDataset(root, "train").class_names


DATASETS: dict[str, DatasetEntry] = {
    "cifar10": DatasetEntry(
        lambda root, split, category: CifarDataset("cifar10", root, split),
        lambda root, category: CIFAR10_CLASSES,
        "CIFAR-10 through torchvision (10 classes)",
    ),
    "cifar100": DatasetEntry(
        lambda root, split, category: CifarDataset("cifar100", root, split),
        lambda root, category: CIFAR100_COARSE_CLASSES,
        "CIFAR-100 through torchvision, 20 coarse superclasses",
    ),
    "fmnist": DatasetEntry(
        lambda root, split, category: FashionMNISTDataset(root, split),
        lambda root, category: FMNIST_CLASSES,
        "Fashion-MNIST idx files (torchvision download or Debian's dataset-fashion-mnist)",
    ),
    "mvtec": DatasetEntry(
        lambda root, split, category: MVTecDataset(root, split, category=category),
        lambda root, category: MVTEC_CATEGORIES if category is None else MVTEC_CLASSES,
        "MVTec AD, one category at a time (downloaded by the user)",
        per_category=True,
        has_masks=True,
    ),
    "mvtec3d": DatasetEntry(
        lambda root, split, category, **options: MVTec3DDataset(
            root, split, category=category, **options
        ),
        lambda root, category: MVTEC3D_CATEGORIES if category is None else MVTEC_CLASSES,
        "MVTec 3D-AD, RGB and masks, one category at a time (downloaded by the user)",
        per_category=True,
        options=frozenset({"validation_in_bank"}),
        has_masks=True,
    ),
    "imagefolder": DatasetEntry(
        lambda root, split, category: ImageFolderDataset(root, split),
        _imagefolder_classes,
        "<root>/{train,test}/<class>/*.{png,jpg,jpeg}, a folder or a .zip",
        fixed_classes=False,
    ),
}


def _check_name(name: str, category: str | None) -> DatasetEntry:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    entry = DATASETS[name]
    if category is not None and not entry.per_category:
        per_category = [other for other, e in DATASETS.items() if e.per_category]
        raise ConfigError(
            f"dataset {name!r} has no categories (category={category!r}); "
            f"only {', '.join(per_category)} has"
        )
    return entry


def load_dataset(
    name: str,
    root: Root,
    split: str,
    *,
    category: str | None = None,
    download: bool = False,
    offline: bool | None = None,
    **options: Any,
) -> ImageDataset:
    """Load one split of a registered dataset, with all of its classes.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    root : path
        The dataset's folder (or zip, for ``imagefolder``).
    split : {"train", "test"}
    category : str, optional
        The MVTec AD category (required for ``mvtec``, refused elsewhere).
    download : bool
        Download a missing CIFAR/Fashion-MNIST into ``root`` (a new or empty folder), the
        way the workflow's ``fetch`` rule does (:func:`cap.utils.resources.fetch_resource`);
        never in offline mode.
    offline : bool, optional
        The config's offline flag (see :func:`cap.utils.offline.is_offline`).
    **options
        The loader's own options (:attr:`DatasetEntry.options`; ``mvtec3d``:
        ``validation_in_bank``).
    """
    entry = _check_name(name, category)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if entry.per_category and category is None:
        valid = ", ".join(entry.classes(None, None))
        raise ConfigError(f"{name} needs a category; valid: {valid}")
    unknown = sorted(set(options) - entry.options)
    if unknown:
        raise ConfigError(
            f"dataset {name!r} has no option {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(entry.options)) or 'none'}"
        )
    root = Path(root).expanduser()
    if download and name in TORCHVISION_DATASETS:
        fetch_resource("torchvision", name, root, offline=offline)
    return entry.load(root, split, category, **options)


def list_classes(name: str, root: Root | None = None, category: str | None = None) -> list[str]:
    """Class names of a dataset, in label order.

    For ``mvtec`` without a category these are the 15 categories (each one a
    one-class task); with a category, its label space ``["good", "defect"]``.
    ``imagefolder`` reads them from the folders under ``root``.
    """
    entry = _check_name(name, category)
    return list(entry.classes(None if root is None else Path(root), category))
