"""Any ONNX image model through onnxruntime: the pooled feature (and feature map) by tensor
name, added as graph outputs.

A classifier exported to ONNX keeps its penultimate features inside the graph (for
onnx/models' int8 ShuffleNetV2, the 1024-d tensor ``611``, the ReduceMean of the map
``610``); they become outputs here with the ``onnx`` package, so the same model gives
features and logits. Input layout (NCHW or NHWC) and normalisation are options; a
model whose batch is fixed at 1 runs one image per call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cap.backbones.base import Backbone, Encoded, file_sha256
from cap.data.transforms import (
    DEFAULT_PREPROCESSING,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Uint8Transform,
    describe_normalisation,
    get_preprocessing,
)
from cap.utils.errors import ConfigError, MissingResourceError

#: How to install the optional dependencies, for the error where they are missing.
ONNX_INSTALL = "pip install onnx onnxruntime"
LAYOUTS: tuple[str, ...] = ("NCHW", "NHWC")


def import_onnx() -> tuple[Any, Any]:
    """The ``onnx`` and ``onnxruntime`` packages, or a ConfigError saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise ConfigError(
            f"the onnx backbone needs onnx and onnxruntime: {ONNX_INSTALL}"
        ) from error
    return onnx, onnxruntime


class OnnxBackbone(Backbone):
    """An ONNX image model with a float32 input of 3 channels, run with onnxruntime."""

    def __init__(
        self,
        name: str = "onnx",
        *,
        weights: str | os.PathLike[str] | None = None,
        device: str = "auto",
        pooled_tensor: str | None = None,
        map_tensor: str | None = None,
        patch_layers: Sequence[str] = (),
        input_layout: str = "NCHW",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        num_threads: int | None = None,
        preprocessing: str = DEFAULT_PREPROCESSING,
    ) -> None:
        get_preprocessing(preprocessing)  # an unknown name fails before the model loads
        if weights is None:
            raise ConfigError("the onnx backbone needs its model file: pass weights=PATH.onnx")
        if pooled_tensor is None:
            raise ConfigError(
                "the onnx backbone needs the name of its pooled feature tensor "
                "(options.pooled_tensor)"
            )
        if input_layout not in LAYOUTS:
            raise ConfigError(f"unknown input_layout {input_layout!r}; valid: {', '.join(LAYOUTS)}")
        if device not in ("auto", "cpu"):
            raise ConfigError(f"the onnx backbone runs on the CPU here (device={device!r})")
        onnx, onnxruntime = import_onnx()
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MissingResourceError(f"ONNX model {path} does not exist")
        try:
            model = onnx.load(str(path))
        except Exception as error:  # protobuf errors come in many types
            raise ConfigError(f"cannot load ONNX model {path}: {error}") from error
        self.logits_output = model.graph.output[0].name
        known = _tensor_names(model)
        for tensor in (pooled_tensor, map_tensor, *patch_layers):
            if tensor is not None and tensor not in known:
                last = ", ".join(sorted(known, key=known.get)[-6:])
                raise ConfigError(f"{path} has no tensor {tensor!r}; its last tensors are: {last}")
            if tensor is not None and tensor not in {o.name for o in model.graph.output}:
                model.graph.output.append(onnx.ValueInfoProto(name=tensor))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or os.cpu_count() or 1
        self.session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0]
        shape = self.input.shape  # e.g. [1, 3, 224, 224]; a dynamic axis is a name
        channels, side = (shape[1], shape[2]) if input_layout == "NCHW" else (shape[3], shape[1])
        if len(shape) != 4 or channels != 3 or not isinstance(side, int):
            raise ConfigError(
                f"{path}: input {self.input.name!r} has shape {shape}; the onnx backbone "
                f"takes [B, 3, S, S] (NCHW) or [B, S, S, 3] (NHWC) images: check input_layout"
            )
        self.batch_one = shape[0] == 1
        self.layout = input_layout
        self.pooled_tensor, self.map_tensor = pooled_tensor, map_tensor
        self.patch_layers = tuple(patch_layers)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.name = name
        self.device = "cpu"
        self.weights_id = file_sha256(path)
        self.transform = Uint8Transform(side, preprocessing)
        self.preprocessing = preprocessing
        normalisation = describe_normalisation(mean, std)
        self.input_description = f"{self.transform.describe()}, {normalisation}, {input_layout}"
        self.dim = int(self._run(np.zeros((1, side, side, 3), np.uint8), [pooled_tensor])[0].size)

    def _inputs(self, images: np.ndarray) -> np.ndarray:
        """uint8 (B, S, S, 3) → normalised float32 in the model's layout."""
        x = (images.astype(np.float32) / np.float32(255) - self.mean) / self.std  # (B, S, S, 3)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x)

    def _run(self, images: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """``outputs`` of (B, S, S, 3) uint8 images, one call per image where the model's
        batch is fixed at 1; each (B, ...)."""
        batches = [images[i : i + 1] for i in range(len(images))] if self.batch_one else [images]
        results = [
            self.session.run(outputs, {self.input.name: self._inputs(batch)}) for batch in batches
        ]
        return [np.concatenate([result[i] for result in results]) for i in range(len(outputs))]

    def encode(self, batch: Any, *, maps: bool = False, patches: bool = False) -> Encoded:
        """Encode (B, S, S, 3) uint8 images; see :meth:`Backbone.encode`."""
        self._check_patches(patches)
        if maps and self.map_tensor is None:
            raise ConfigError(f"backbone {self.name!r} has no map_tensor to return maps from")
        images = np.asarray(batch, dtype=np.uint8)
        wanted = [
            self.pooled_tensor,
            *([self.map_tensor] if maps else []),
            *(self.patch_layers if patches else ()),
        ]
        values = [value.astype(np.float32) for value in self._run(images, wanted)]
        if self.layout == "NCHW":  # every map to (B, h, w, C)
            values[1:] = [value.transpose(0, 2, 3, 1) for value in values[1:]]
        return Encoded(
            pooled=values[0].reshape(len(images), -1),  # (B, D)
            maps=values[1] if maps else None,
            patches=tuple(values[1 + maps :]),
        )

    def logits(self, batch: Any) -> np.ndarray:
        """The model's own output (B, n_classes); see :meth:`Backbone.logits`."""
        images = np.asarray(batch, dtype=np.uint8)
        return self._run(images, [self.logits_output])[0].reshape(len(images), -1)


def _tensor_names(model: Any) -> dict[str, int]:
    """Every tensor a graph's nodes produce, by position of its node (and the inputs)."""
    names = {tensor.name: -1 for tensor in model.graph.input}
    for position, node in enumerate(model.graph.node):
        names.update({output: position for output in node.output})
    return names
