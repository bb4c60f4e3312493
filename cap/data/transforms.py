"""Image preprocessing of the paper and its released code.

The released CAP code resizes every image to 256×256 with ``Image.ANTIALIAS``,
centre-crops 224×224 and normalises with the ImageNet mean/std. ``ANTIALIAS`` was
removed in Pillow 10; it was an alias of ``Image.Resampling.LANCZOS``, which is
what we use, so the pixels match the released code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as F

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Side of the square resize before the crop, for the paper's 224 crop.
RESIZE: int = 256
#: Side of the centre crop fed to the backbone.
CROP: int = 224
#: The filter ``Image.ANTIALIAS`` named before Pillow 10.
RESAMPLE = Image.Resampling.LANCZOS


def resize_side(crop: int) -> int:
    """Square resize side for a ``crop`` × ``crop`` input, keeping the paper's 256:224 ratio."""
    return round(crop * RESIZE / CROP)


def resize_and_crop(image: Image.Image, crop: int = CROP, resample: int = RESAMPLE) -> Image.Image:
    """Resize to a square of side ``resize_side(crop)`` (antialiased), then centre-crop ``crop``.

    Done in one step: Pillow resamples only the source box that lands in the crop,
    which gives the same pixels as resizing and then cropping (torchvision's
    rounding of the crop offset), for about two thirds of the work.
    """
    side = resize_side(crop)
    offset = round((side - crop) / 2)  # as torchvision's CenterCrop
    width, height = image.size
    box = (
        offset * width / side,
        offset * height / side,
        (offset + crop) * width / side,
        (offset + crop) * height / side,
    )
    return image.resize((crop, crop), resample, box=box)


@dataclass(frozen=True)
class PaperTransform:
    """PIL RGB image → float tensor of shape (3, crop, crop), ImageNet-normalised."""

    crop: int = CROP  # side of the centre crop

    def __call__(self, image: Image.Image) -> torch.Tensor:
        tensor = F.to_tensor(resize_and_crop(image, self.crop))  # (3, crop, crop) in [0, 1]
        return F.normalize(tensor, IMAGENET_MEAN, IMAGENET_STD)

    def describe(self) -> str:
        side = resize_side(self.crop)
        return (
            f"resize {side}x{side} (PIL LANCZOS, the released code's Image.ANTIALIAS), "
            f"centre-crop {self.crop}, ImageNet mean/std, float32 CHW"
        )


@dataclass(frozen=True)
class Uint8Transform:
    """PIL RGB image → raw uint8 pixels of shape (crop, crop, 3), for quantised TFLite models."""

    crop: int = CROP  # side of the centre crop

    def __call__(self, image: Image.Image) -> np.ndarray:
        return np.array(resize_and_crop(image, self.crop), dtype=np.uint8)  # (crop, crop, 3)

    def describe(self) -> str:
        side = resize_side(self.crop)
        return (
            f"resize {side}x{side} (PIL LANCZOS, the released code's Image.ANTIALIAS), "
            f"centre-crop {self.crop}, raw uint8 RGB HWC (no mean/std: the model's input "
            f"quantisation does it)"
        )


def transform_mask(mask: np.ndarray, crop: int = CROP) -> np.ndarray:
    """Align a defect mask of shape (H, W) with a preprocessed image: (crop, crop) bool.

    Nearest-neighbour resize, as the released MVTec code does for masks.
    """
    image = Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
    return np.asarray(resize_and_crop(image, crop, Image.Resampling.NEAREST)) > 127
