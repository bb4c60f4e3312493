"""torchvision ResNets with pinned ImageNet weights; the feature is layer4's global average.

``IMAGENET1K_V1`` is pinned on purpose: torchvision's ``DEFAULT`` is V2 for
ResNet-152, which the paper did not use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

from cap.backbones.base import Backbone, file_sha256
from cap.data.transforms import (
    DEFAULT_PREPROCESSING,
    Uint8Transform,
    get_preprocessing,
    normalise,
)
from cap.utils.errors import ConfigError, MissingResourceError
from cap.utils.offline import is_offline

#: ``weights`` value that skips loading (random initialisation), for speed benchmarks only.
RANDOM_WEIGHTS = "random"


@dataclass(frozen=True)
class Architecture:
    """One torchvision classifier used as a feature extractor."""

    builder: str  # function in torchvision.models
    weights_enum: str  # its weights enum in torchvision.models
    weights_tag: str = "IMAGENET1K_V1"  # the pinned weights
    dim: int = 2048  # channels of layer4 = feature dimension D


ARCHITECTURES: dict[str, Architecture] = {
    "resnet152": Architecture("resnet152", "ResNet152_Weights"),
    "wide_resnet50_2": Architecture("wide_resnet50_2", "Wide_ResNet50_2_Weights"),
}


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N") from error


def load_state_dict(
    architecture: Architecture, weights: str | os.PathLike[str] | None, offline: bool | None
) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The state dict to load and its weights id; None means random initialisation.

    ``weights`` is a local checkpoint (a state dict, or a dict holding one under
    ``"state_dict"``); when None, the pinned torchvision weights come from the
    torch hub cache, downloaded there unless offline.
    """
    if weights == RANDOM_WEIGHTS:
        return None, "random-init"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MissingResourceError(f"checkpoint {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling a foreign file fails in many ways
            raise ConfigError(f"cannot load checkpoint {path}: {error!r}") from error
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ConfigError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
        return state, file_sha256(path)
    enum = getattr(torchvision.models, architecture.weights_enum)[architecture.weights_tag]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True), architecture.weights_tag
    if is_offline(offline):
        raise MissingResourceError(
            f"{architecture.builder} {architecture.weights_tag} weights not found and offline mode "
            f"is on: expected {cached}. Download {enum.url} to that path (or pass --weights PATH)."
        )
    return enum.get_state_dict(progress=True, check_hash=True), architecture.weights_tag


class TorchvisionBackbone(Backbone):
    """ResNet trunk up to layer4: pooled (B, 2048) features and (B, 7, 7, 2048) maps.

    Runs in eval mode without gradients; on CUDA with channels-last memory and,
    when ``bf16=True``, bfloat16 autocast (outputs are float32 either way).
    """

    def __init__(
        self,
        name: str,
        *,
        weights: str | os.PathLike[str] | None = None,
        device: str = "auto",
        bf16: bool = False,
        offline: bool | None = None,
        preprocessing: str = DEFAULT_PREPROCESSING,
    ) -> None:
        get_preprocessing(preprocessing)  # an unknown name fails before the weights load
        if name not in ARCHITECTURES:
            raise ConfigError(
                f"unknown torchvision backbone {name!r}; valid: {', '.join(ARCHITECTURES)}"
            )
        architecture = ARCHITECTURES[name]
        state, self.weights_id = load_state_dict(architecture, weights, offline)
        model = getattr(torchvision.models, architecture.builder)(weights=None)
        if state is not None:
            try:
                model.load_state_dict(state)
            except RuntimeError as error:
                raise ConfigError(
                    f"weights {weights or architecture.weights_tag} do not fit {name}: "
                    f"{str(error).splitlines()[0]}"
                ) from error
        self.trunk = torch.nn.Sequential(*list(model.children())[:-2]).eval().requires_grad_(False)
        self.name = name
        self.dim = architecture.dim
        self.bf16 = bf16
        self.device = str(resolve_device(device))
        if self.device.startswith("cuda"):
            self.trunk = self.trunk.to(self.device, memory_format=torch.channels_last)
        self.transform = Uint8Transform(preprocessing=preprocessing)
        self.preprocessing_name = preprocessing
        self.preprocessing = f"{self.transform.describe()}, ImageNet mean/std on the device"

    @torch.inference_mode()
    def embed(
        self, batch: torch.Tensor, *, return_maps: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Encode (B, 224, 224, 3) uint8 images (normalised here, on the device); see
        :meth:`Backbone.embed`."""
        images = normalise(torch.as_tensor(batch).to(self.device, non_blocking=True))
        if self.device.startswith("cuda"):
            images = images.contiguous(memory_format=torch.channels_last)
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            maps = self.trunk(images)  # (B, D, 7, 7)
        maps = maps.float()
        pooled = maps.mean(dim=(2, 3))  # (B, D): the avgpool of torchvision's ResNet
        maps_hwc = maps.permute(0, 2, 3, 1).cpu().numpy() if return_maps else None  # (B, 7, 7, D)
        return pooled.cpu().numpy(), maps_hwc
