"""The backbone interface: a frozen pretrained encoder from images to features.

Shapes: B = batch, D = feature dimension, 7×7 = the last feature map's grid (for
a 224×224 input).
"""

from __future__ import annotations

import abc
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cap.utils.errors import ConfigError


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
    """

    name: str
    dim: int
    weights_id: str
    preprocessing: str = "custom"
    input_description: str
    transform: Callable[[Image.Image], Any]
    device: str

    @abc.abstractmethod
    def embed(
        self, batch: Any, *, return_maps: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Encode a batch of transformed images.

        Parameters
        ----------
        batch : tensor or array
            :attr:`transform` outputs stacked along a new first axis (B, ...).
        return_maps : bool
            Also return the last feature map, whose global average is the pooled feature.

        Returns
        -------
        pooled : ndarray of shape (B, D), float32
        maps : ndarray of shape (B, 7, 7, D), float32, or None
        """

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
