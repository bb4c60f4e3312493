"""Any TFLite image model through ``ai-edge-litert``: pooled feature and feature map by tensor name.

The defaults fit ImageNet MobileNetV2 (``mobilenet_v2_1.0_224_quant.tflite``): its
pooled 1280-d feature is ``MobilenetV2/Logits/AvgPool`` and the 7×7 map before it
is ``MobilenetV2/Conv_1/Relu6``. Reading intermediate tensors needs
``experimental_preserve_all_tensors``; quantised outputs are dequantised. Such
models take a batch of one, so :meth:`TFLiteBackbone.embed` invokes once per image.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cap.backbones.base import Backbone, Encoded, file_sha256
from cap.data.transforms import DEFAULT_PREPROCESSING, Uint8Transform, get_preprocessing
from cap.utils.errors import ConfigError, MissingResourceError

DEFAULT_POOLED_TENSOR = "MobilenetV2/Logits/AvgPool"
DEFAULT_MAP_TENSOR = "MobilenetV2/Conv_1/Relu6"


def find_tensor(details: list[dict[str, Any]], name: str, model: Path) -> dict[str, Any]:
    """The tensor called ``name``, or the one whose fused name (``a;b;c``) starts with ``name;``."""
    for detail in details:
        if detail["name"] == name or detail["name"].split(";")[0] == name:
            return detail
    last = ", ".join(detail["name"].split(";")[0] for detail in details[-6:])
    raise ConfigError(f"{model} has no tensor {name!r}; its last tensors are: {last}")


def dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """``(q - zero_point) * scale`` for quantised tensors; float tensors pass through."""
    scale, zero_point = detail["quantization"]
    if scale == 0:
        return values.astype(np.float32)
    return (values.astype(np.float32) - zero_point) * np.float32(scale)


class TFLiteBackbone(Backbone):
    """A TFLite model with a uint8 NHWC input of batch 1, run on the CPU."""

    def __init__(
        self,
        name: str = "tflite",
        *,
        weights: str | os.PathLike[str] | None = None,
        device: str = "auto",
        pooled_tensor: str = DEFAULT_POOLED_TENSOR,
        map_tensor: str = DEFAULT_MAP_TENSOR,
        patch_layers: Sequence[str] = (),
        num_threads: int | None = None,
        preprocessing: str = DEFAULT_PREPROCESSING,
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        get_preprocessing(preprocessing)  # an unknown name fails before the model loads
        if weights is None:
            raise ConfigError("the tflite backbone needs its model file: pass weights=PATH.tflite")
        if device not in ("auto", "cpu"):
            raise ConfigError(f"the tflite backbone runs on the CPU only (device={device!r})")
        model = Path(weights).expanduser()
        if not model.is_file():
            raise MissingResourceError(f"TFLite model {model} does not exist")
        with warnings.catch_warnings():  # preserving all tensors is what we need, not debugging
            warnings.simplefilter("ignore", UserWarning)
            try:
                self.interpreter = Interpreter(
                    model_path=str(model),
                    num_threads=num_threads or os.cpu_count() or 1,
                    experimental_preserve_all_tensors=True,
                )
            except ValueError as error:
                raise ConfigError(f"cannot load TFLite model {model}: {error}") from error
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        batch, height, width, channels = self.input["shape"]
        if self.input["dtype"] != np.uint8 or batch != 1 or height != width or channels != 3:
            raise ConfigError(
                f"{model}: input is {self.input['dtype'].__name__} {list(self.input['shape'])}; "
                f"the tflite backbone supports uint8 [1, S, S, 3] image models"
            )
        details = self.interpreter.get_tensor_details()
        self.pooled = find_tensor(details, pooled_tensor, model)
        self.map = find_tensor(details, map_tensor, model)
        if len(self.map["shape"]) != 4 or self.map["shape"][-1] != self.pooled["shape"][-1]:
            raise ConfigError(
                f"{model}: map tensor {map_tensor!r} has shape {list(self.map['shape'])}, expected "
                f"[1, h, w, {self.pooled['shape'][-1]}] to match the pooled tensor"
            )
        self.patch_layers = tuple(patch_layers)
        self.patch = [find_tensor(details, layer, model) for layer in self.patch_layers]
        self.name = name
        self.dim = int(self.pooled["shape"][-1])
        self.weights_id = file_sha256(model)
        self.device = "cpu"
        self.transform = Uint8Transform(int(height), preprocessing)
        self.preprocessing = preprocessing
        self.input_description = (
            f"{self.transform.describe()}, no mean/std (the model's quantisation)"
        )

    def logits(self, batch: Any) -> np.ndarray:
        """The model's own output (B, n_classes), dequantised, where it is a classifier (not
        its pooled feature); see :meth:`Backbone.logits`."""
        output = self.interpreter.get_output_details()[0]
        if output["index"] == self.pooled["index"]:
            return super().logits(batch)
        images = np.asarray(batch, dtype=np.uint8)
        scores = []
        for image in images:
            self.interpreter.set_tensor(self.input["index"], image[None])  # (1, S, S, 3)
            self.interpreter.invoke()
            scores.append(dequantize(self.interpreter.get_tensor(output["index"]), output)[0])
        return np.stack(scores)

    def encode(self, batch: Any, *, maps: bool = False, patches: bool = False) -> Encoded:
        """Encode (B, S, S, 3) uint8 images, one invoke each; see :meth:`Backbone.encode`."""
        self._check_patches(patches)
        tensors = [self.pooled, *([self.map] if maps else []), *(self.patch if patches else [])]
        images = np.asarray(batch, dtype=np.uint8)
        values: list[list[np.ndarray]] = [[] for _ in tensors]
        for image in images:
            self.interpreter.set_tensor(self.input["index"], image[None])  # (1, S, S, 3)
            self.interpreter.invoke()
            for collected, detail in zip(values, tensors, strict=True):
                collected.append(dequantize(self.interpreter.get_tensor(detail["index"]), detail))
        stacked = [np.concatenate(collected) for collected in values]  # each (B, ...)
        return Encoded(
            pooled=stacked[0].reshape(len(images), -1),  # (B, D)
            maps=stacked[1] if maps else None,  # (B, h, w, D)
            patches=tuple(stacked[1 + maps :]),  # each (B, h_l, w_l, C_l)
        )
