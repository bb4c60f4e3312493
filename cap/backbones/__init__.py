"""Backbone registry: adding a backbone is one entry in :data:`BACKBONES` (a torchvision
ResNet: one in :data:`cap.backbones.torchvision_models.ARCHITECTURES`; any timm, ONNX or
TFLite model: none, it is a config entry).

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
from cap.backbones.onnx_models import OnnxBackbone
from cap.backbones.tflite import TFLiteBackbone
from cap.backbones.timm_models import TimmBackbone
from cap.backbones.torchvision_models import ARCHITECTURES, TorchvisionBackbone
from cap.utils.errors import ConfigError

__all__ = ["BACKBONES", "Backbone", "backbone_options", "build_backbone"]

#: name → constructor taking ``weights``, ``device`` and backbone-specific options.
BACKBONES: dict[str, Callable[..., Backbone]] = {
    **{name: partial(TorchvisionBackbone, name) for name in ARCHITECTURES},
    "tflite": partial(TFLiteBackbone, "tflite"),
    "timm": partial(TimmBackbone, "timm"),
    "onnx": partial(OnnxBackbone, "onnx"),
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
        A local checkpoint (torchvision, timm: a state dict; ``tflite``, ``onnx``: the
        model file). torchvision models default to their pinned ImageNet weights, timm
        models to timm's pretrained ones.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
    **options
        ``preprocessing`` (every backbone): a key of
        :data:`cap.data.transforms.PREPROCESSINGS`, default ``"paper"``.
        Backbone-specific: ``offline``, ``bf16``, ``compile``, ``runtime`` (``auto``,
        ``torch``, ``onnx``) and ``export_cache`` (the ONNX exports' folder) (torchvision,
        timm: :mod:`cap.backbones.torch_onnx`); ``architecture``,
        ``input_size``, ``mean``, ``std`` (timm); ``pooled_tensor``, ``map_tensor``,
        ``num_threads`` (tflite, onnx); ``input_layout``, ``mean``, ``std`` (onnx).
    """
    accepted = backbone_options(name)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"backbone {name!r} has no option {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(accepted))}"
        )
    return BACKBONES[name](weights=weights, device=device, **options)


def backbone_options(name: str) -> set[str]:
    """The options registered backbone ``name`` takes (beside ``weights`` and ``device``)."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    return set(inspect.signature(BACKBONES[name]).parameters) - {"weights", "device"}
