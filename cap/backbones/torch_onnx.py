"""A torch backbone through onnxruntime: the same network, about three times as fast on
a CPU (docs/performance.md, "Torch backbones through onnxruntime").

The graph is the torch path's own code (:meth:`TorchBackbone._outputs`: normalisation,
last feature map, pooling, the patch layers' maps) traced by ``torch.onnx.export``
(TorchScript exporter, opset :data:`OPSET`, any batch size, the transform's S × S), so
that both runtimes give the same outputs in the same order. An export is made once and
kept in a cache folder under a content key (:func:`export_key`: the weights' bytes, the
architecture, the input, the code and library versions that shape the graph). Before a
backbone runs it, its outputs on a check batch are compared with torch's: an export that
fails, or one that differs by more than :data:`TOLERANCE`, leaves the backbone on torch,
with a warning naming the model.

Which runtime ``auto`` takes is a rule, measured on the models the configs use (the same
document): onnxruntime on a CPU, where it ran EfficientNet-Lite0 and the ResNets faster
than torch (channels-last, and compiled); torch on CUDA, and with ``bf16`` (autocast is
torch's).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cap.backbones.base import Encoded
from cap.utils.errors import ConfigError, DataError
from cap.utils.io import atomic_path

if TYPE_CHECKING:  # planning reads RUNTIMES without importing torch
    from cap.backbones.torch_module import TorchBackbone

log = logging.getLogger(__name__)

#: The ``runtime`` option of torch backbones; ``auto`` is the default.
RUNTIMES: tuple[str, ...] = ("torch", "onnx", "auto")
DEFAULT_RUNTIME = "auto"
#: The name an embedding file records (``runtime``) for each runtime that ran.
RECORDED = {"torch": "torch", "onnx": "onnxruntime"}
OPSET = 17
#: Largest max |Δ| / max |torch output| of any output (pooled, map, patch maps) on the
#: check batch. Measured (AMD EPYC, AVX-512): 4.5e-6 for EfficientNet-Lite0 on the check
#: batch, up to 1.7e-5 on real images (photographs, CIFAR-10, MVTec 3D-AD tire: the maps
#: and patch maps; pooled features 3e-6), 2.7e-6 for random ResNet-152 and WideResNet-50;
#: so 6× the largest. A real fault is far beyond: Lite0 with its first convolution's
#: weights 0.1% off differs by 3e-3.
TOLERANCE = 1e-4
#: Images in the check batch (and the batch the export is traced with).
CHECK_IMAGES = 4
#: Images per onnxruntime call, whatever the DataLoader's batch: on 2 cores Lite0 ran
#: 1.4x as fast in calls of 4 as of 64 (268 against 192 images/s; its activations stay in
#: the caches), ResNet-152 alike at any size from 2 to 32.
CHUNK = 4
#: What the exported graph needs installed, for the error where ``runtime: onnx`` lacks it.
ONNXRUNTIME_INSTALL = "pip install onnxruntime"
#: Packages whose versions shape the exported graph (the exporter, the models' code).
GRAPH_PACKAGES: tuple[str, ...] = ("torch", "torchvision", "timm")


def resolve_runtime(runtime: str, *, device: str, bf16: bool, compile: bool, model: str) -> str:
    """``"torch"`` or ``"onnx"``: the runtime asked for, ``auto`` by the rule (module
    docstring); a ConfigError where ``onnx`` is asked for what only torch does."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    cpu = device == "cpu"
    if runtime == "torch" or (runtime == "auto" and (not cpu or bf16)):
        return "torch"
    available = importlib.util.find_spec("onnxruntime") is not None
    if runtime == "auto":
        if not available:
            log.info("%s runs on torch: onnxruntime is not installed", model)
        return "onnx" if available else "torch"
    torch_only = [what for what, asked in (("bf16", bf16), ("compile", compile)) if asked]
    if not cpu or torch_only:
        why = f"device {device}" if not cpu else " and ".join(torch_only)
        raise ConfigError(
            f"{model}: runtime onnx runs onnxruntime on the CPU, without {why}: "
            "set runtime torch (or auto)"
        )
    if not available:
        raise ConfigError(f"{model}: runtime onnx needs onnxruntime: {ONNXRUNTIME_INSTALL}")
    return "onnx"


def check_images(side: int, count: int = CHECK_IMAGES, seed: int = 0) -> np.ndarray:
    """A fixed batch of smooth random images (count, side, side, 3) uint8: colour blobs
    (8 × 8 noise, bicubic) with a little pixel noise, whose activations resemble a
    photograph's more than pure noise's do."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        blobs = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        smooth = np.asarray(blobs.resize((side, side), Image.Resampling.BICUBIC), np.int16)
        grain = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
        images.append(np.clip(smooth + grain, 0, 255).astype(np.uint8))
    return np.stack(images)


def difference(reference: Encoded, candidate: Encoded) -> float:
    """The largest max |Δ| / max |reference| over the outputs both hold (pooled, map,
    patch maps): each relative to its own scale, since activations near 0 would make an
    elementwise relative difference meaningless."""
    pairs = [(reference.pooled, candidate.pooled)]
    pairs += [(reference.maps, candidate.maps)] if reference.maps is not None else []
    pairs += list(zip(reference.patches, candidate.patches, strict=True))
    return max(
        float(np.abs(found - expected).max() / max(float(np.abs(expected).max()), 1e-30))
        for expected, found in pairs
    )


class OnnxForward:
    """A torch backbone's export in an onnxruntime session: uint8 images (B, S, S, 3) →
    pooled (B, C), last map (B, h, w, C), each patch layer's map (B, h_l, w_l, C_l)."""

    def __init__(self, model: bytes, *, side: int, patch_layers: int, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no busy-waiting between calls: on a shared CPU (the DataLoader's workers, other
        # jobs) Lite0's pipeline ran 1.2x as fast without it (docs/performance.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        self.side = side
        self.names = ["pooled", "map", *(f"patch{i}" for i in range(patch_layers))]

    def __call__(self, batch: Any, *, maps: bool, patches: bool) -> Encoded:
        images = np.asarray(batch, dtype=np.uint8)  # (B, S, S, 3)
        if images.shape[1:] != (self.side, self.side, 3):
            raise DataError(
                f"images of shape {images.shape[1:]}, but the ONNX export takes "
                f"({self.side}, {self.side}, 3): the backbone's transform outputs "
                "(runtime torch takes other sizes)"
            )
        wanted = self.names[:2] if maps else self.names[:1]
        wanted += self.names[2:] if patches else []
        chunks = [
            self.session.run(wanted, {"images": images[start : start + CHUNK]})
            for start in range(0, len(images), CHUNK)
        ]
        values = [np.concatenate(outputs) for outputs in zip(*chunks, strict=True)]
        return Encoded(
            pooled=values[0],  # (B, C)
            maps=values[1] if maps else None,  # (B, h, w, C)
            patches=tuple(values[2:] if maps else values[1:]),  # each (B, h_l, w_l, C_l)
        )


def onnx_forward(
    backbone: TorchBackbone, cache: str | os.PathLike[str] | None
) -> OnnxForward | None:
    """``backbone``'s export ready to run (from ``cache`` where it holds it, else exported
    and kept there), or None, with a warning naming the model, where the export fails or
    its outputs on the check batch differ from torch's by more than :data:`TOLERANCE`.

    A bad patch layer is a ConfigError, as on torch: the reference runs first."""
    images = check_images(backbone.transform.crop)
    reference = backbone.encode(images, maps=True, patches=bool(backbone.patch_layers))
    model = backbone.architecture
    try:
        forward = _cached_session(backbone, images, cache)
        found = difference(reference, forward(images, maps=True, patches=True))
    except Exception as error:  # the exporter and onnxruntime fail in many types
        log.warning("%s runs on torch: its ONNX export failed (%s)", model, _first_line(error))
        return None
    if not found <= TOLERANCE:  # a NaN difference fails too
        log.warning(
            "%s runs on torch: its ONNX export differs from torch by %.2g on the check batch "
            "(max |Δ| / max |output|; tolerance %g)",
            model,
            found,
            TOLERANCE,
        )
        return None
    log.info("%s runs on onnxruntime (max relative |Δ| to torch %.2g)", model, found)
    return forward


def export_key(backbone: TorchBackbone) -> str:
    """sha256 of what an export computes: the module's state (names, dtypes, shapes and
    bytes: random weights differ by process), the architecture, the input side and
    normalisation, the patch layers, the opset, this code and the library versions."""
    import torch

    weights = hashlib.sha256()
    for name, tensor in backbone.module.state_dict().items():
        weights.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        weights.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    code = hashlib.sha256()
    for module in sorted({__name__, "cap.backbones.torch_module", type(backbone).__module__}):
        code.update(Path(sys.modules[module].__file__).read_bytes())
    payload = {
        "architecture": backbone.architecture,
        "weights": weights.hexdigest(),
        "side": backbone.transform.crop,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "patch_layers": list(backbone.patch_layers),
        "opset": OPSET,
        "code": code.hexdigest(),
        "versions": {name: _version(name) for name in GRAPH_PACKAGES},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def export(backbone: TorchBackbone, images: np.ndarray) -> bytes:
    """The ONNX model of ``backbone``'s :meth:`~TorchBackbone._outputs`, traced on
    ``images`` (B, S, S, 3) uint8 with the batch axis left free."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = backbone.module  # its weights become the graph's initialisers

        def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:
            return backbone._outputs(inputs, patches=True)

    names = ["pooled", "map", *(f"patch{i}" for i in range(len(backbone.patch_layers)))]
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Graph().eval(),
            (torch.from_numpy(images),),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=names,
            dynamic_axes={name: {0: "batch"} for name in ["images", *names]},
        )
    return buffer.getvalue()


def _cached_session(
    backbone: TorchBackbone, images: np.ndarray, cache: str | os.PathLike[str] | None
) -> OnnxForward:
    """The export's session: from ``cache`` where it holds a readable one under its key
    (any other file there is a miss, replaced), else exported (traced on ``images``) and
    written there atomically once onnxruntime has loaded it."""
    import torch

    def session(model: bytes) -> OnnxForward:
        side, layers = backbone.transform.crop, len(backbone.patch_layers)
        return OnnxForward(model, side=side, patch_layers=layers, threads=torch.get_num_threads())

    if cache is None:
        return session(export(backbone, images))
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", backbone.architecture)
    path = Path(cache) / f"{safe}-{export_key(backbone)[:32]}.onnx"
    if path.is_file():
        try:
            return session(path.read_bytes())
        except Exception as error:  # a truncated or foreign file fails in many types
            log.warning("%s: exporting again (%s)", path, _first_line(error))
    model = export(backbone, images)
    forward = session(model)
    with atomic_path(path) as temporary:
        temporary.write_bytes(model)
    log.info("exported %s to %s", backbone.architecture, path)
    return forward


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
