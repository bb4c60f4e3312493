"""Fashion-MNIST from its original idx files; grayscale is replicated to RGB.

The root may be a folder that directly holds the idx files, gzipped or not (such
as Debian's ``dataset-fashion-mnist``, ``/usr/share/datasets/fashion-mnist``), or
torchvision's layout ``<root>/FashionMNIST/raw``, which torchvision's download fills.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image

from cap.data.base import ImageDataset
from cap.utils.errors import DataError, MissingResourceError

#: Path-safe class names, in label order (torchvision's ``T-shirt/top`` holds a slash).
FMNIST_CLASSES: tuple[str, ...] = (
    "tshirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
)  # fmt: skip

#: (images, labels) idx file stems of each split.
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
HOW_TO_OBTAIN = (
    "install Debian's package (`apt-get install dataset-fashion-mnist`, files in "
    "/usr/share/datasets/fashion-mnist) and point the data root there, or download it on a "
    "machine with network access: `load_dataset('fmnist', ROOT, split, download=True)` into "
    "a new folder (or the workflow's fetch rule)"
)


#: Largest idx payload read, in bytes: the header's shape says how much follows, and a
#: gzip of a few kB can inflate to gigabytes. 1 GiB is twice EMNIST's largest file (547 MB;
#: Fashion-MNIST's training images: 47 MB).
MAX_IDX_BYTES = 2**30


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file of unsigned bytes (``.gz`` or plain) into an array of its shape,
    reading no more than its header announces (at most :data:`MAX_IDX_BYTES`)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[:3] != b"\x00\x00\x08":
                raise DataError(
                    f"{path} is not an idx file of unsigned bytes (magic {magic.hex()})"
                )
            header = handle.read(4 * magic[3])
            shape = tuple(int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(magic[3]))
            size = int(np.prod(shape, dtype=object))
            if size > MAX_IDX_BYTES:
                raise DataError(
                    f"{path}: header says shape {shape}, {size} bytes, more than the "
                    f"{MAX_IDX_BYTES} an idx file may hold"
                )
            data = handle.read(size + 1)  # bounded: one byte more tells a longer file
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read idx file {path}: {error}") from error
    if len(header) != 4 * magic[3] or len(data) != size:
        raise DataError(f"{path}: header says shape {shape}, but {len(data)} bytes follow")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def find_idx_files(root: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of ``split`` in ``root`` or torchvision's layout under it."""
    for folder in (root, root / "FashionMNIST" / "raw"):
        found = []
        for stem in IDX_FILES[split]:
            candidates = [folder / stem, folder / f"{stem}.gz"]
            found.append(next((path for path in candidates if path.is_file()), None))
        if all(found):
            return found[0], found[1]
    return None


class FashionMNISTDataset(ImageDataset):
    """One Fashion-MNIST split; ids are the image's index in the split."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
    ) -> None:
        root = Path(root).expanduser()
        files = find_idx_files(root, split)
        if files is None:
            expected = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES[split])
            raise MissingResourceError(
                f"Fashion-MNIST {split} split not found: expected {expected} in {root} or in "
                f"{root / 'FashionMNIST' / 'raw'}; " + HOW_TO_OBTAIN
            )
        self.images = read_idx(files[0])  # (N, 28, 28) uint8
        labels = read_idx(files[1]).astype(np.int64)
        if self.images.ndim != 3 or len(self.images) != len(labels):
            raise DataError(
                f"{files[0]} and {files[1]} disagree: {self.images.shape} vs {labels.shape}"
            )
        super().__init__(
            name="fmnist",
            split=split,
            ids=[str(index) for index in range(len(labels))],
            labels=labels,
            class_names=FMNIST_CLASSES,
        )

    def _load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index])  # (28, 28) uint8 → mode "L"
