"""Users' own images: ``<root>/{train,test}/<class>/*.{png,jpg,jpeg}``, or a ``.zip`` of it.

Class names are the class folders of both splits, sorted, so that train and test
share one label space. A zip may wrap the layout in one top-level folder
(``cifar10-jpg/train/...``); grayscale and RGBA images are converted to RGB.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from cap.data.base import SPLITS, ImageDataset
from cap.data.tree import FileTree, ignored
from cap.utils.errors import DataError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg"})
LAYOUT = "<root>/{train,test}/<class>/*.{png,jpg,jpeg} (a folder, or a .zip of that layout)"


def _find_prefix(folders: Iterable[str], root: Path) -> str:
    """The folder holding ``train``/``test``: the root itself, or one wrapping folder."""
    folders = {folder for folder in folders if not any(ignored(p) for p in folder.split("/"))}
    if any(split in folders for split in SPLITS):
        return ""
    tops = {folder.split("/")[0] for folder in folders}
    if len(tops) == 1:
        top = tops.pop()
        if any(f"{top}/{split}" in folders for split in SPLITS):
            return top + "/"
    raise DataError(f"{root} has no train/ or test/ folder; expected {LAYOUT}")


def _scan_split(
    files: list[str], folders: set[str], prefix: str, split: str, root: Path
) -> tuple[list[str], list[str], list[str]]:
    """Class names of both splits, then ids and class of each image of ``split``, sorted."""
    relative = [folder[len(prefix) :].split("/") for folder in folders if folder.startswith(prefix)]
    class_folders = {
        name: sorted(p[1] for p in relative if len(p) == 2 and p[0] == name and not ignored(p[1]))
        for name in SPLITS
    }
    if f"{prefix}{split}" not in folders:
        raise DataError(f"{root} has no {split}/ folder; expected {LAYOUT}")
    by_class: dict[str, list[str]] = {}
    for path in sorted(files):
        parts = path[len(prefix) :].split("/")  # split, class, ..., file
        if (
            path.startswith(prefix)
            and len(parts) >= 3
            and parts[0] == split
            and not any(ignored(part) for part in parts)
            and os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES
        ):
            by_class.setdefault(parts[1], []).append("/".join(parts))
    empty = [name for name in class_folders[split] if name not in by_class]
    if empty:
        raise DataError(
            f"{root}: class folder(s) {', '.join(f'{split}/{c}/' for c in empty)} hold no image "
            f"({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    class_names = sorted(set(class_folders["train"]) | set(class_folders["test"]))
    ids = [path for name in class_folders[split] for path in by_class[name]]
    classes = [name for name in class_folders[split] for _ in by_class[name]]
    return class_names, ids, classes


class ImageFolderDataset(ImageDataset):
    """One split of an image folder or zip (see the module docstring for the layout)."""

    def __init__(
        self, root: str | os.PathLike[str], split: str, *, name: str = "imagefolder"
    ) -> None:
        self.tree = FileTree(root, LAYOUT)
        self.root = self.tree.root
        self.prefix = _find_prefix(self.tree.folders, self.root)
        class_names, ids, classes = _scan_split(
            self.tree.files, self.tree.folders, self.prefix, split, self.root
        )
        position = {class_name: label for label, class_name in enumerate(class_names)}
        labels = [position[class_name] for class_name in classes]
        super().__init__(name=name, split=split, ids=ids, labels=labels, class_names=class_names)

    def _load(self, index: int) -> Image.Image:
        return self.tree.open_image(self.prefix + self.ids[index])

    def source(self, index: int) -> str:
        return self.tree.source(self.prefix + self.ids[index])
