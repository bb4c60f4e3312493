"""The backbone interface: a frozen pretrained encoder from images to features.

Shapes: B = batch, D = feature dimension, 7×7 = the last feature map's grid (for
a 224×224 input).
"""

from __future__ import annotations

import abc
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cap.utils.errors import ConfigError


@dataclass(frozen=True)
class Encoded:
    """A batch through a backbone: B images, D features, h × w a map's grid."""

    pooled: np.ndarray  # (B, D) float32 pooled features
    maps: np.ndarray | None = None  # (B, h, w, D) float32 last feature maps
    patches: tuple[np.ndarray, ...] = ()  # per patch layer: (B, h_l, w_l, C_l) float32


class Backbone(abc.ABC):
    """A frozen encoder ``G_P`` of the paper (§3.1): memory items ``m_i = G_P(x_i)``.

    Attributes
    ----------
    name : str
        Registry name (``"resnet152"``, ``"tflite"``, ...), stored in the embedding file.
    dim : int
        Feature dimension D.
    weights_id : str
        What the weights are: a torchvision tag (``"IMAGENET1K_V1"``) or the sha256
        of the checkpoint file, so that two embedding files can be told apart.
    preprocessing : str
        Key of :data:`cap.data.transforms.PREPROCESSINGS` that :attr:`transform` applies
        (``"paper"``, ``"torchvision"``, ``"direct"``), stored in the embedding file;
        ``"custom"`` for a backbone whose transform is none of them.
    input_description : str
        What :attr:`transform` and the model's input normalisation do, in words, stored in
        the embedding file.
    transform : callable
        PIL RGB image → one input of :meth:`embed` (picklable, for DataLoader workers).
    device : str
        Where :meth:`embed` runs (``"cpu"``, ``"cuda"``).
    runtime : str or None
        What ran the network where there was a choice (torch backbones: ``"torch"`` or
        ``"onnxruntime"``), stored in the embedding file; None for the others.
    """

    name: str
    dim: int
    weights_id: str
    preprocessing: str = "custom"
    input_description: str
    transform: Callable[[Image.Image], Any]
    device: str
    runtime: str | None = None
    patch_layers: tuple[str, ...] = ()  # mid-level layers whose maps patch methods read

    @abc.abstractmethod
    def encode(self, batch: Any, *, maps: bool = False, patches: bool = False) -> Encoded:
        """Encode a batch of transformed images.

        Parameters
        ----------
        batch : tensor or array
            :attr:`transform` outputs stacked along a new first axis (B, ...).
        maps : bool
            Also return the last feature map, whose global average is the pooled feature.
        patches : bool
            Also return the maps of :attr:`patch_layers` (a ConfigError where none are set).
        """

    def embed(
        self, batch: Any, *, return_maps: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The pooled features (B, D) and, with ``return_maps``, the last feature maps
        (B, h, w, D) of a batch (:meth:`encode`)."""
        encoded = self.encode(batch, maps=return_maps)
        return encoded.pooled, encoded.maps

    def _check_patches(self, patches: bool) -> None:
        if patches and not self.patch_layers:
            raise ConfigError(
                f"backbone {self.name!r} has no patch_layers: name the mid-level layers whose "
                "maps a patch-level method reads (options.patch_layers)"
            )

    def logits(self, batch: Any) -> np.ndarray:
        """Class logits (or scores) of shape (B, n_classes) of transformed images, where the
        model keeps its classifier (the tests check that real weights load right by
        classifying photographs); a ConfigError otherwise."""
        raise ConfigError(f"backbone {self.name!r} ({type(self).__name__}) has no classifier")

    def __repr__(self) -> str:
        kind = type(self).__name__
        return f"{kind}(name={self.name!r}, dim={self.dim}, weights={self.weights_id!r})"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
