"""Small image sets written by the tests and a fake backbone."""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as F

from cap.backbones.base import Backbone, Encoded


def write_image(
    path: Path, *, seed: int, mode: str = "RGB", size: tuple[int, int] = (20, 16)
) -> None:
    """A random image in ``mode`` saved by extension (PNG or JPEG)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels).save(path)


def png_header(width: int, height: int) -> bytes:
    """A PNG that says it is ``width`` × ``height`` RGB but holds no pixels: a decompression
    bomb's header, a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def make_image_folder(root: Path, counts: dict[str, dict[str, int]] | None = None) -> Path:
    """``root/{split}/{class}/NN.{png,jpg}``; every third image grayscale, every fourth RGBA PNG."""
    counts = counts or {"train": {"cat": 3, "ant": 4}, "test": {"cat": 2, "ant": 2, "bee": 2}}
    seed = 0
    for split, classes in counts.items():
        for class_name, count in classes.items():
            for n in range(count):
                seed += 1
                rgba = n % 4 == 3
                suffix = ".png" if rgba or n % 2 == 0 else ".jpg"
                mode = "RGBA" if rgba else "L" if n % 3 == 2 else "RGB"
                write_image(root / split / class_name / f"{n:02d}{suffix}", seed=seed, mode=mode)
    return root


def zip_folder(folder: Path, archive: Path, *, top: str | None = None) -> Path:
    """Zip ``folder``'s contents, optionally under one wrapping folder ``top``."""
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                handle.write(path, f"{top}/{name}" if top else name)
    return archive


def make_mvtec(root: Path, category: str = "bottle") -> Path:
    """An MVTec-like tree: 3 good train, 2 good + 2 broken + 1 crack test images, masks."""
    folder = root / category
    seed = 100
    for split, defect, count in (
        ("train", "good", 3),
        ("test", "good", 2),
        ("test", "broken", 2),
        ("test", "crack", 1),
    ):
        for n in range(count):
            seed += 1
            write_image(folder / split / defect / f"{n:03d}.png", seed=seed, size=(32, 32))
            if defect != "good":
                mask = np.zeros((32, 32), dtype=np.uint8)
                mask[4 * n : 4 * n + 8, 10:20] = 255
                (folder / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(folder / "ground_truth" / defect / f"{n:03d}_mask.png")
    return root


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file of unsigned bytes, gzipped when ``path`` ends in ``.gz``."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(payload)


class MeanColourBackbone(Backbone):
    """A tiny deterministic stand-in: D = 3 channel means of a 14×14 resize; 7×7 maps; its
    one patch layer is the 14×14 image itself."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.dim = 3
        self.weights_id = "none"
        self.input_description = "resize 14x14, [0, 1] CHW"
        self.device = "cpu"
        self.transform = SmallTensor()
        self.patch_layers = ("pixels",)

    def encode(self, batch: torch.Tensor, *, maps: bool = False, patches: bool = False) -> Encoded:
        grid = torch.nn.functional.avg_pool2d(batch, 2)  # (B, 3, 7, 7)
        return Encoded(
            pooled=grid.mean(dim=(2, 3)).numpy(),  # (B, 3)
            maps=grid.permute(0, 2, 3, 1).numpy() if maps else None,
            patches=(batch.permute(0, 2, 3, 1).numpy(),) if patches else (),  # (B, 14, 14, 3)
        )


class SmallTensor:
    """Image → (3, 14, 14) float tensor; a mask → (14, 14), nearest."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return F.to_tensor(image.resize((14, 14)))

    def mask(self, mask: np.ndarray) -> np.ndarray:
        image = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
        return np.asarray(image.resize((14, 14), Image.Resampling.NEAREST)) > 127
