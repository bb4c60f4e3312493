"""What every PyTorch backbone shares: a frozen module on a device, uint8 images normalised
there, a state dict read safely, and features taken from the last feature map.

Shapes: B = batch, C = channels of the last feature map (= D, the pooled feature's
dimension), h × w its grid, S the square input side.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cap.backbones.base import Backbone, Encoded
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

    Subclasses set :attr:`module`, the input side and normalisation through
    :meth:`_place`, and implement :meth:`_feature_map` and :meth:`_pool`
    (and :meth:`_classify` where the module has its classifier). With ``compile``, the
    feature map is computed by ``torch.compile`` (about a minute of compiling per
    process; on a 2-core CPU EfficientNet-Lite0 ran 1.9× as fast).
    """

    module: torch.nn.Module
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
    ) -> None:
        """Freeze ``module`` on ``device`` (channels-last: on CPUs too, where oneDNN's
        depthwise and grouped convolutions run about twice as fast so), optionally
        compiled, and set the transform to ``side`` × ``side``; the outputs of the modules
        named in ``patch_layers`` are caught as the network runs (:meth:`encode`)."""
        import torch

        self.device = str(resolve_device(device))
        self.module = module.eval().requires_grad_(False)
        self.module = self.module.to(self.device, memory_format=torch.channels_last)
        modules = dict(self.module.named_modules())
        unknown = [layer for layer in patch_layers if layer not in modules]
        if unknown:
            named = ", ".join(name for name in modules if name and name.count(".") < 2)
            raise ConfigError(
                f"backbone {self.name!r} has no module {unknown[0]!r} for patch_layers; "
                f"its modules include: {named}"
            )
        self.patch_layers = tuple(patch_layers)
        self._caught: dict[str, torch.Tensor] = {}
        for layer in self.patch_layers:
            modules[layer].register_forward_hook(self._catch(layer))
        self.bf16 = bf16
        self._forward = torch.compile(self._feature_map) if compile else self._feature_map
        self.mean, self.std = tuple(mean), tuple(std)
        self.transform = Uint8Transform(side, preprocessing)
        self.preprocessing = preprocessing
        normalisation = describe_normalisation(mean, std)
        self.input_description = f"{self.transform.describe()}, {normalisation} on the device"

    @abc.abstractmethod
    def _feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, C, h, w) of normalised images (B, 3, S, S)."""

    @abc.abstractmethod
    def _pool(self, maps: torch.Tensor) -> torch.Tensor:
        """The pooled feature (B, C) of float32 feature maps (B, C, h, w)."""

    def _classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes) of pooled features (B, C)."""
        raise ConfigError(f"backbone {self.name!r} has no classifier")

    def _maps(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Float32 last feature maps (B, C, h, w) of (B, S, S, 3) uint8 images."""
        import torch

        images = normalise(
            torch.as_tensor(batch).to(self.device, non_blocking=True), self.mean, self.std
        ).contiguous(memory_format=torch.channels_last)
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            maps = self._forward(images)  # (B, C, h, w)
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
        """Encode (B, S, S, 3) uint8 images (normalised here, on the device); see
        :meth:`Backbone.encode`."""
        import torch

        self._check_patches(patches)
        self._catching, self._caught = patches, {}
        try:
            with torch.inference_mode():
                last = self._maps(batch)  # (B, C, h, w)
                pooled = self._pool(last)  # (B, C)
                caught = (
                    [self._caught[layer].float() for layer in self.patch_layers] if patches else []
                )
                hwc = [
                    m.permute(0, 2, 3, 1).cpu().numpy() for m in ([last] if maps else []) + caught
                ]
        finally:
            self._catching, self._caught = False, {}
        return Encoded(
            pooled=pooled.cpu().numpy(),
            maps=hwc[0] if maps else None,  # (B, h, w, C)
            patches=tuple(hwc[1 if maps else 0 :]),  # each (B, h_l, w_l, C_l)
        )

    def logits(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class logits (B, n_classes) of (B, S, S, 3) uint8 images; see :meth:`Backbone.logits`."""
        import torch

        with torch.inference_mode():
            return self._classify(self._pool(self._maps(batch))).float().cpu().numpy()
