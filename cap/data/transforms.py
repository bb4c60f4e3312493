"""Image preprocessing: the named ways of bringing an image to the backbone's input.

The released CAP code resizes every image to 256×256 with ``Image.ANTIALIAS``,
centre-crops 224×224 and normalises with the ImageNet mean/std. ``ANTIALIAS`` was
removed in Pillow 10; it was an alias of ``Image.Resampling.LANCZOS``, which is
what we use, so the pixels of ``"paper"`` match the released code. The other
entries of :data:`PREPROCESSINGS` are the pipelines other numbers were made with
(``"torchvision"``: PANDA's code, behind the DN2/PANDA rows of the paper's Table 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cap.utils.errors import ConfigError

if TYPE_CHECKING:  # planning reads the preprocessings' names without importing torch
    import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Side of the square resize before the crop, for the paper's 224 crop.
RESIZE: int = 256
#: Side of the centre crop fed to the backbone.
CROP: int = 224
#: The filter ``Image.ANTIALIAS`` named before Pillow 10.
RESAMPLE = Image.Resampling.LANCZOS
#: The preprocessing of the paper's released code, the default everywhere.
DEFAULT_PREPROCESSING = "paper"


def resize_side(crop: int) -> int:
    """Resize side for a ``crop`` × ``crop`` input, keeping the paper's 256:224 ratio."""
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


def resize_shorter_and_crop(
    image: Image.Image, crop: int = CROP, resample: int = Image.Resampling.BILINEAR
) -> Image.Image:
    """torchvision's ``Compose([Resize(resize_side(crop)), CenterCrop(crop)])`` on a PIL image.

    The shorter side becomes ``resize_side(crop)`` and the longer one keeps the
    aspect ratio (truncated, as torchvision does); torchvision resizes PIL images
    with PIL's own antialiased filter, here bilinear.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    interpolation = InterpolationMode[Image.Resampling(resample).name]  # the same PIL filter
    resized = F.resize(image, resize_side(crop), interpolation=interpolation)
    return F.center_crop(resized, [crop, crop])


def resize_direct(
    image: Image.Image, crop: int = CROP, resample: int = Image.Resampling.BILINEAR
) -> Image.Image:
    """Resize straight to ``crop`` × ``crop`` (aspect ratio not kept), no crop."""
    return image.resize((crop, crop), resample)


@dataclass(frozen=True)
class Preprocessing:
    """One named geometry and filter: PIL image → PIL image of ``crop`` × ``crop``."""

    resize: Callable[[Image.Image, int, int], Image.Image]  # (image, crop, filter) → image
    resample: Image.Resampling  # filter for images; masks go through the same geometry NEAREST
    summary: str  # what it does; ``{side}`` and ``{crop}`` are filled in by describe()
    source: str  # where it comes from

    def __call__(self, image: Image.Image, crop: int = CROP) -> Image.Image:
        return self.resize(image, crop, self.resample)

    def mask(self, image: Image.Image, crop: int = CROP) -> Image.Image:
        """The same geometry with nearest-neighbour sampling, for defect masks."""
        return self.resize(image, crop, Image.Resampling.NEAREST)

    def describe(self, crop: int = CROP) -> str:
        return self.summary.format(side=resize_side(crop), crop=crop)


#: name → preprocessing; the name is recorded in embedding files (``preprocessing``).
PREPROCESSINGS: dict[str, Preprocessing] = {
    "paper": Preprocessing(
        resize_and_crop,
        RESAMPLE,
        "resize {side}x{side} (PIL LANCZOS, the released code's Image.ANTIALIAS), "
        "centre-crop {crop}",
        source="CAP's released code: 256x256 with Image.ANTIALIAS, then CenterCrop(224)",
    ),
    "torchvision": Preprocessing(
        resize_shorter_and_crop,
        Image.Resampling.BILINEAR,
        "resize the shorter side to {side} keeping the aspect ratio (torchvision Resize, PIL "
        "bilinear), centre-crop {crop}",
        source="PANDA's code (the DN2/PANDA rows of Table 1): Resize(256), CenterCrop(224)",
    ),
    "direct": Preprocessing(
        resize_direct,
        Image.Resampling.BILINEAR,
        "resize {crop}x{crop} (PIL bilinear), no crop",
        source="the whole image at the backbone's input size, nothing cropped away",
    ),
}


def get_preprocessing(name: str) -> Preprocessing:
    """The registered preprocessing ``name``; ConfigError listing the valid names otherwise."""
    if name not in PREPROCESSINGS:
        raise ConfigError(f"unknown preprocessing {name!r}; valid: {', '.join(PREPROCESSINGS)}")
    return PREPROCESSINGS[name]


@dataclass(frozen=True)
class Uint8Transform:
    """PIL RGB image → raw uint8 pixels of shape (crop, crop, 3): what every backbone's
    DataLoader carries (a quarter of float32's bytes through the workers, pinning and the
    bus); a quantised TFLite model takes them as they are, a torchvision one normalises
    them on its device (:func:`normalise`)."""

    crop: int = CROP  # side of the backbone's square input
    preprocessing: str = DEFAULT_PREPROCESSING  # a key of PREPROCESSINGS

    def __post_init__(self) -> None:
        get_preprocessing(self.preprocessing)

    def __call__(self, image: Image.Image) -> np.ndarray:
        resized = PREPROCESSINGS[self.preprocessing](image, self.crop)
        return np.array(resized, dtype=np.uint8)  # (crop, crop, 3)

    def describe(self) -> str:
        summary = PREPROCESSINGS[self.preprocessing].describe(self.crop)
        return f"{self.preprocessing}: {summary}, uint8 RGB HWC"

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """A defect mask (H, W) aligned with this transform's output: (crop, crop) bool."""
        return transform_mask(mask, self.crop, self.preprocessing)


def describe_normalisation(mean: Sequence[float], std: Sequence[float]) -> str:
    """How inputs are normalised, in words (the ImageNet statistics by that name)."""
    if (tuple(mean), tuple(std)) == (IMAGENET_MEAN, IMAGENET_STD):
        return "ImageNet mean/std"
    return f"mean {list(mean)} / std {list(std)}"


def normalise(
    images: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 images (B, H, W, 3) → normalised float32 (B, 3, H, W), on their device (by
    default with the ImageNet mean/std).

    The same operations as torchvision's ``to_tensor`` then ``normalize``, in the same
    order and precision: on a CPU the result is bit-identical to theirs.
    """
    import torch

    x = images.permute(0, 3, 1, 2).to(torch.float32).div(255)  # (B, 3, H, W) in [0, 1]
    mean = torch.tensor(mean, dtype=torch.float32, device=images.device)
    std = torch.tensor(std, dtype=torch.float32, device=images.device)
    return x.sub_(mean[:, None, None]).div_(std[:, None, None])


def transform_mask(
    mask: np.ndarray, crop: int = CROP, preprocessing: str = DEFAULT_PREPROCESSING
) -> np.ndarray:
    """Align a defect mask of shape (H, W) with a preprocessed image: (crop, crop) bool.

    The image's geometry with nearest-neighbour sampling, as the released MVTec
    code does for masks.
    """
    image = Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
    return np.asarray(get_preprocessing(preprocessing).mask(image, crop)) > 127
