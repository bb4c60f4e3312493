"""Backbone registry: adding a backbone is one entry in :data:`BACKBONES`.

>>> backbone = build_backbone("tflite", weights="mobilenet_v2_1.0_224_quant.tflite")
>>> pooled, maps = backbone.embed(batch, return_maps=True)  # (B, D), (B, 7, 7, D)
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from cap.backbones.base import Backbone
from cap.backbones.tflite import TFLiteBackbone
from cap.backbones.torchvision_models import TorchvisionBackbone
from cap.utils.errors import ConfigError

__all__ = ["BACKBONES", "Backbone", "build_backbone"]

#: name → constructor taking ``weights``, ``device`` and backbone-specific options.
BACKBONES: dict[str, Callable[..., Backbone]] = {
    "resnet152": partial(TorchvisionBackbone, "resnet152"),
    "wide_resnet50_2": partial(TorchvisionBackbone, "wide_resnet50_2"),
    "tflite": partial(TFLiteBackbone, "tflite"),
}


def build_backbone(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    **options: Any,
) -> Backbone:
    """Build a registered backbone.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`.
    weights : path, optional
        A local checkpoint (torchvision: state dict; ``tflite``: the model file).
        torchvision models default to their pinned ImageNet weights.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
    **options
        ``preprocessing`` (every backbone): a key of
        :data:`cap.data.transforms.PREPROCESSINGS`, default ``"paper"``.
        Backbone-specific: ``offline``, ``bf16`` (torchvision); ``pooled_tensor``,
        ``map_tensor``, ``num_threads`` (tflite).
    """
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    constructor = BACKBONES[name]
    accepted = set(inspect.signature(constructor).parameters) - {"weights", "device"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"backbone {name!r} has no option {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(accepted))}"
        )
    return constructor(weights=weights, device=device, **options)
