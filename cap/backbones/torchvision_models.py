"""torchvision ResNets with pinned ImageNet weights; the feature is layer4's global average.

An architecture is one entry of :data:`ARCHITECTURES`: its name in torchvision's model
registry and its pinned weights; the weights enum and the feature dimension come from
torchvision. ``IMAGENET1K_V1`` is pinned on purpose: torchvision's ``DEFAULT`` is V2 for
ResNet-152, which the paper did not use.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cap.backbones.base import file_sha256
from cap.backbones.torch_module import TorchBackbone, load_checkpoint
from cap.backbones.torch_onnx import DEFAULT_RUNTIME
from cap.data.transforms import (
    CROP,
    DEFAULT_PREPROCESSING,
    IMAGENET_MEAN,
    IMAGENET_STD,
    get_preprocessing,
)
from cap.utils.errors import ConfigError, MissingResourceError
from cap.utils.offline import is_offline

if TYPE_CHECKING:
    import torch

#: ``weights`` value that skips loading (random initialisation), for speed measurements only.
RANDOM_WEIGHTS = "random"


#: torchvision ResNet-family models (a layer4 and an fc head) → their pinned weights tag.
ARCHITECTURES: dict[str, str] = {
    "resnet152": "IMAGENET1K_V1",
    "wide_resnet50_2": "IMAGENET1K_V1",
}


def load_state_dict(
    architecture: str, weights: str | os.PathLike[str] | None, offline: bool | None
) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The state dict to load and its weights id; None means random initialisation.

    ``weights`` is a local checkpoint (:func:`load_checkpoint`); when None, the pinned
    torchvision weights come from the torch hub cache, downloaded there unless offline.
    """
    import torch
    import torchvision

    if weights == RANDOM_WEIGHTS:
        return None, "random-init"
    if weights is not None:
        return load_checkpoint(weights), file_sha256(Path(weights).expanduser())
    tag = ARCHITECTURES[architecture]
    enum = torchvision.models.get_model_weights(architecture)[tag]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if cached.is_file():
        return load_checkpoint(cached), tag
    if is_offline(offline):
        raise MissingResourceError(
            f"{architecture} {tag} weights not found and offline mode is on: expected "
            f"{cached}. Download {enum.url} to that path (or pass --weights PATH)."
        )
    return enum.get_state_dict(progress=True, check_hash=True), tag


class TorchvisionBackbone(TorchBackbone):
    """ResNet trunk up to layer4: pooled (B, 2048) features and (B, 7, 7, 2048) maps."""

    def __init__(
        self,
        name: str,
        *,
        weights: str | os.PathLike[str] | None = None,
        device: str = "auto",
        bf16: bool = False,
        compile: bool = False,
        patch_layers: Sequence[str] = (),
        runtime: str = DEFAULT_RUNTIME,
        export_cache: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
        preprocessing: str = DEFAULT_PREPROCESSING,
    ) -> None:
        import torch
        import torchvision

        get_preprocessing(preprocessing)  # an unknown name fails before the weights load
        if name not in ARCHITECTURES:
            raise ConfigError(
                f"unknown torchvision backbone {name!r}; valid: {', '.join(ARCHITECTURES)}"
            )
        state, self.weights_id = load_state_dict(name, weights, offline)
        model = torchvision.models.get_model(name, weights=None)
        if state is not None:
            try:
                model.load_state_dict(state)
            except RuntimeError as error:
                raise ConfigError(
                    f"weights {weights or ARCHITECTURES[name]} do not fit {name}: "
                    f"{str(error).splitlines()[0]}"
                ) from error
        self.classifier = model.fc.eval().requires_grad_(False)
        trunk = torch.nn.Sequential(OrderedDict(list(model.named_children())[:-2]))  # layer1…4
        self.name = self.architecture = name
        self.dim = int(model.fc.in_features)  # layer4's channels
        self._place(
            trunk,
            device=device,
            bf16=bf16,
            compile=compile,
            patch_layers=patch_layers,
            runtime=runtime,
            export_cache=export_cache,
            side=CROP,
            preprocessing=preprocessing,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
        self.classifier.to(self.device)

    @property
    def trunk(self) -> torch.nn.Module:
        """The ResNet up to layer4 (without its pooling and classifier)."""
        return self.module

    def _feature_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images)  # (B, D, 7, 7)

    def _pool(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3))  # (B, D): the avgpool of torchvision's ResNet

    def _classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)  # (B, 1000)
