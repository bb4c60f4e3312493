"""What every PyTorch backbone shares: a frozen module on a device, uint8 images normalised
there, a state dict read safely, features taken from the last feature map, and the
choice of runtime on a CPU (torch, or its ONNX export through onnxruntime:
:mod:`cap.backbones.torch_onnx`).

Shapes: B = batch, C = channels of the last feature map (= D, the pooled feature's
dimension), h × w its grid, S the square input side.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cap.backbones.base import Backbone, Encoded
from cap.backbones.torch_onnx import (
    DEFAULT_RUNTIME,
    RECORDED,
    OnnxForward,
    onnx_forward,
    resolve_runtime,
)
from cap.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Uint8Transform,
    describe_normalisation,
    normalise,
)
from cap.utils.errors import ConfigError
from cap.utils.torch_io import load_torch_file, resolve_device

if TYPE_CHECKING:  # registering backbones (planning) does not import torch
    import torch


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from a local checkpoint file (or a dict holding one under
    ``"state_dict"``)."""
    state = load_torch_file(path, "checkpoint")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return state


class TorchBackbone(Backbone):
    """A frozen ``torch.nn.Module``: eval mode, no gradients; on CUDA channels-last and,
    with ``bf16``, bfloat16 autocast (features are float32 either way).

    Subclasses set :attr:`module`, :attr:`architecture`, the input side and normalisation
    through :meth:`_place`, and implement :meth:`_feature_map` and :meth:`_pool`
    (and :meth:`_classify` where the module has its classifier). With ``compile``, the
    feature map is computed by ``torch.compile`` where torch runs (about a minute of
    compiling per process; on a 2-core CPU EfficientNet-Lite0 ran 1.9× as fast). With
    ``runtime`` ``onnx`` (``auto``: on a CPU without ``bf16``), :meth:`encode` runs the
    network's ONNX export through onnxruntime, where the export matches torch's outputs
    (:func:`cap.backbones.torch_onnx.onnx_forward`); :attr:`runtime` says which ran.
    """

    module: torch.nn.Module
    architecture: str  # the model's name in its library (timm's, torchvision's)
    bf16: bool = False
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def _place(
        self,
        module: torch.nn.Module,
        *,
        device: str,
        bf16: bool,
        compile: bool,
        side: int,
        preprocessing: str,
        mean: Sequence[float],
        std: Sequence[float],
        patch_layers: Sequence[str] = (),
        runtime: str = DEFAULT_RUNTIME,
        export_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        """Freeze ``module`` on ``device`` (channels-last: on CPUs too, where oneDNN's
        depthwise and grouped convolutions run about twice as fast so), optionally
        compiled, and set the transform to ``side`` × ``side``; the outputs of the modules
        named in ``patch_layers`` are caught as the network runs (:meth:`encode`). Then
        pick the runtime (:func:`~cap.backbones.torch_onnx.resolve_runtime`); an export
        is kept in ``export_cache`` (None: made in memory at each build)."""
        import torch

        self.device = str(resolve_device(device))
        self.module = module.eval().requires_grad_(False)
        self.module = self.module.to(self.device, memory_format=torch.channels_last)
        # the root ("") is the whole network, whose forward encode never calls: not a layer
        modules = {name: module for name, module in self.module.named_modules() if name}
        unknown = [layer for layer in patch_layers if layer not in modules]
        if unknown:
            raise ConfigError(
                f"backbone {self.name!r} has no module {unknown[0]!r} for patch_layers; "
                f"its modules include: {', '.join(_outer(modules))}"
            )
        self.patch_layers = tuple(patch_layers)
        self._caught: dict[str, torch.Tensor] = {}
        for layer in self.patch_layers:
            modules[layer].register_forward_hook(self._catch(layer))
        self.bf16 = bf16
        self._forward = self._feature_map  # compiled below, where torch runs
        self.mean, self.std = tuple(mean), tuple(std)
        self.transform = Uint8Transform(side, preprocessing)
        self.preprocessing = preprocessing
        normalisation = describe_normalisation(mean, std)
        self.input_description = f"{self.transform.describe()}, {normalisation} on the device"
        chosen = resolve_runtime(
            runtime, device=self.device, bf16=bf16, compile=compile, model=self.architecture
        )
        self._onnx: OnnxForward | None = None
        if chosen == "onnx":
            self._onnx = onnx_forward(self, export_cache)
        if self._onnx is None and compile:
            self._forward = torch.compile(self._feature_map)
        self.runtime = RECORDED["torch" if self._onnx is None else "onnx"]

    @abc.abstractmethod
    def _feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, C, h, w) of normalised images (B, 3, S, S)."""

    @abc.abstractmethod
    def _pool(self, maps: torch.Tensor) -> torch.Tensor:
        """The pooled feature (B, C) of float32 feature maps (B, C, h, w)."""

    def _classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes) of pooled features (B, C)."""
        raise ConfigError(f"backbone {self.name!r} has no classifier")

    def _inputs(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Normalised channels-last images (B, 3, S, S) of (B, S, S, 3) uint8 images."""
        import torch

        return normalise(
            torch.as_tensor(batch).to(self.device, non_blocking=True), self.mean, self.std
        ).contiguous(memory_format=torch.channels_last)

    def _maps(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Float32 last feature maps (B, C, h, w) of (B, S, S, 3) uint8 images."""
        import torch

        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            maps = self._forward(self._inputs(batch))  # (B, C, h, w)
        return maps.float()

    def _catch(self, layer: str) -> Callable[..., None]:
        """A forward hook keeping ``layer``'s output while :meth:`encode` asks for it."""

        def hook(module: Any, inputs: Any, output: torch.Tensor) -> None:
            if self._catching:
                self._caught[layer] = output

        return hook

    _catching: bool = False

    def encode(
        self, batch: torch.Tensor | np.ndarray, *, maps: bool = False, patches: bool = False
    ) -> Encoded:
        """Encode (B, S, S, 3) uint8 images (normalised here, on the device; or through the
        ONNX export, see the class); see :meth:`Backbone.encode`."""
        import torch

        self._check_patches(patches)
        if self._onnx is not None:
            return self._onnx(batch, maps=maps, patches=patches)
        with torch.inference_mode():
            pooled, *hwc = [value.cpu().numpy() for value in self._outputs(batch, patches)]
        return Encoded(
            pooled=pooled,  # (B, C)
            maps=hwc[0] if maps else None,  # (B, h, w, C)
            patches=tuple(hwc[1:]),  # each (B, h_l, w_l, C_l)
        )

    def _outputs(self, batch: torch.Tensor | np.ndarray, patches: bool) -> list[torch.Tensor]:
        """Float32 pooled features (B, C), last feature maps (B, h, w, C) and, with
        ``patches``, each patch layer's maps (B, h_l, w_l, C_l) of (B, S, S, 3) uint8
        images: what :meth:`encode` returns, and the graph an ONNX export traces."""
        self._catching, self._caught = patches, {}
        try:
            last = self._maps(batch)  # (B, C, h, w)
            pooled = self._pool(last)  # (B, C)
            caught = [self._caught_map(layer, batch) for layer in self.patch_layers if patches]
        finally:
            self._catching, self._caught = False, {}
        return [pooled, *(m.permute(0, 2, 3, 1) for m in [last, *caught])]

    def _caught_map(self, layer: str, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``layer``'s float32 map (B, C_l, h_l, w_l) caught in the forward of ``batch``
        just run; a ConfigError naming the layers that give maps where it gave none (it
        was not called, or its output is pooled, flat or a tuple)."""
        import torch

        output = self._caught.get(layer)
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            return output.float()
        raise ConfigError(
            f"backbone {self.name!r}: patch layer {layer!r} {_gave(output)}, not a feature map "
            f"(B, C, h, w); layers that give one: {', '.join(self._map_layers(batch))}"
        )

    def _map_layers(self, batch: torch.Tensor | np.ndarray) -> list[str]:
        """The modules (named by :func:`_outer`) whose outputs are feature maps
        (B, C, h, w) in a forward of ``batch``, in the order they run: each is hooked."""
        import torch

        is_map: dict[str, bool] = {}

        def record(name: str) -> Callable[..., None]:
            def hook(module: Any, inputs: Any, output: Any) -> None:
                is_map[name] = isinstance(output, torch.Tensor) and output.ndim == 4

            return hook

        modules = dict(self.module.named_modules())
        handles = [modules[name].register_forward_hook(record(name)) for name in _outer(modules)]
        try:
            self._feature_map(self._inputs(batch))
        finally:
            for handle in handles:
                handle.remove()
        return [name for name, found in is_map.items() if found]

    def logits(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class logits (B, n_classes) of (B, S, S, 3) uint8 images: the classifier on the
        pooled features of :meth:`encode` (of either runtime); see :meth:`Backbone.logits`."""
        import torch

        pooled = torch.from_numpy(self.encode(batch).pooled).to(self.device)  # (B, C)
        with torch.inference_mode():
            return self._classify(pooled).float().cpu().numpy()


def _outer(modules: Iterable[str]) -> list[str]:
    """The names of the outer modules (at most one dot: ``layer2``, ``blocks.4``), the
    ones an error lists, without the root ("")."""
    return [name for name in modules if name and name.count(".") < 2]


def _gave(output: Any) -> str:
    """What a hooked module gave in a forward, for an error."""
    if output is None:
        return "is not called by the forward"
    shape = getattr(output, "shape", None)
    return f"gives a {type(output).__name__}" if shape is None else f"gives {tuple(shape)}"
