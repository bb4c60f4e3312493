"""Any timm architecture as a frozen backbone: the standard library of image backbones
(anomalib's feature extractors build on it).

The model comes from ``timm.create_model(architecture)``; its input side and mean/std
from its own pretrained config (``timm.data.resolve_model_data_config``) unless the
config overrides them. Weights: timm's pretrained weights (downloaded once, from the
Hugging Face hub) or a local state-dict file, also one in another naming whose tensors
have the model's shapes in the model's order (EfficientNet-Lite's
``efficientnet_pytorch`` checkpoints for timm's ``tf_efficientnet_lite*``), each shape
checked. Pooled feature: ``forward_head(..., pre_logits=True)`` of the last feature map
``forward_features``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cap.backbones.base import file_sha256
from cap.backbones.torch_module import TorchBackbone, load_checkpoint
from cap.backbones.torch_onnx import DEFAULT_RUNTIME
from cap.data.transforms import DEFAULT_PREPROCESSING, get_preprocessing
from cap.utils.errors import ConfigError, MissingResourceError
from cap.utils.offline import is_offline

if TYPE_CHECKING:
    import torch

#: How to install the optional dependency, for the error where it is missing.
TIMM_INSTALL = "pip install timm"


def import_timm() -> Any:
    """The ``timm`` package, or a ConfigError saying how to install it."""
    try:
        import timm
    except ImportError as error:
        raise ConfigError(f"the timm backbone needs the timm package: {TIMM_INSTALL}") from error
    return timm


def match_state_dict(
    state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """``state`` in the naming of ``own`` (the model's state dict): as it is where the
    names agree, else tensor by tensor in order, where every shape must match.

    Raises ConfigError naming the first tensor whose shape (or count) does not fit.
    """
    if set(state) == set(own):
        pairs = [(name, name) for name in own]
    elif len(state) == len(own):
        pairs = list(zip(state, own, strict=True))
    else:
        raise ConfigError(
            f"{source} holds {len(state)} tensors, the model {len(own)}: it is another "
            "architecture (its names differ too, so they cannot be matched in order)"
        )
    for theirs, ours in pairs:
        if tuple(state[theirs].shape) != tuple(own[ours].shape):
            raise ConfigError(
                f"{source}: tensor {theirs!r} has shape {tuple(state[theirs].shape)}, but the "
                f"model's {ours!r} has {tuple(own[ours].shape)}: the checkpoint is another "
                "architecture or another variant of it"
            )
    return {ours: state[theirs] for theirs, ours in pairs}


class TimmBackbone(TorchBackbone):
    """A timm model's last feature map (B, h, w, C) and pooled feature (B, C)."""

    def __init__(
        self,
        name: str = "timm",
        *,
        architecture: str | None = None,
        weights: str | os.PathLike[str] | None = None,
        device: str = "auto",
        bf16: bool = False,
        compile: bool = False,
        patch_layers: Sequence[str] = (),
        runtime: str = DEFAULT_RUNTIME,
        export_cache: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
        preprocessing: str = DEFAULT_PREPROCESSING,
        input_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        get_preprocessing(preprocessing)  # an unknown name fails before the model loads
        if architecture is None:
            raise ConfigError(
                "the timm backbone needs an architecture (options.architecture), e.g. "
                "tf_efficientnet_lite0; timm.list_models() lists them"
            )
        timm = import_timm()
        known = timm.models.is_model_pretrained if weights is None else timm.is_model
        if not known(architecture):
            raise ConfigError(
                f"timm has no architecture {architecture!r}"
                + (" with pretrained weights" if weights is None else "")
                + "; timm.list_models('*pattern*') finds names"
            )
        if weights is None:
            architecture = pretrained_name(timm, architecture)
        model, self.weights_id = _create(timm, architecture, weights, offline)
        config = timm.data.resolve_model_data_config(model)
        self.name = name
        self.architecture = architecture
        self.dim = int(model.num_features)
        self._place(
            model,
            device=device,
            bf16=bf16,
            compile=compile,
            patch_layers=patch_layers,
            runtime=runtime,
            export_cache=export_cache,
            side=int(input_size or config["input_size"][-1]),
            preprocessing=preprocessing,
            mean=config["mean"] if mean is None else mean,
            std=config["std"] if std is None else std,
        )

    def _feature_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.module.forward_features(images)  # (B, C, h, w)

    def _pool(self, maps: torch.Tensor) -> torch.Tensor:
        return self.module.forward_head(maps, pre_logits=True)  # (B, C)

    def _classify(self, pooled: torch.Tensor) -> torch.Tensor:
        import torch

        classifier = self.module.get_classifier()
        if isinstance(classifier, torch.nn.Identity):
            return super()._classify(pooled)
        return classifier(pooled)  # (B, n_classes)


def pretrained_name(timm: Any, architecture: str) -> str:
    """``architecture`` with the pretrained tag ``timm.create_model(architecture,
    pretrained=True)`` loads: its own, or the architecture's default in timm's registry
    (``resnet18`` as timm's README names it → ``resnet18.a1_in1k``)."""
    cfg = timm.models.get_pretrained_cfg(architecture)
    return f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture


def _create(
    timm: Any, architecture: str, weights: str | os.PathLike[str] | None, offline: bool | None
) -> tuple[torch.nn.Module, str]:
    """The model with its weights, and what the weights are: the sha256 of a local file,
    or ``timm:`` and the tagged name of timm's pretrained weights."""
    if weights is not None:
        model = timm.create_model(architecture, pretrained=False)
        state = match_state_dict(load_checkpoint(weights), model.state_dict(), str(weights))
        model.load_state_dict(state)
        return model, file_sha256(weights)
    hub_id = timm.models.get_pretrained_cfg(architecture).hf_hub_id
    advice = (
        "online, timm downloads them once into the Hugging Face cache; offline, point the "
        "backbone's resource at a local state-dict file"
    )
    overlay = {}
    if is_offline(offline):  # the hub cache only: no request, no retries
        cached = _hub_cached_file(hub_id)
        if cached is None:
            raise MissingResourceError(
                f"timm's pretrained weights of {architecture} ({hub_id}) are not in the "
                f"Hugging Face cache and offline mode is on: {advice}"
            )
        overlay = {"file": cached}
    try:
        model = timm.create_model(architecture, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as error:  # hub and network errors come in many types
        raise MissingResourceError(
            f"timm's pretrained weights of {architecture} could not be loaded ({error}): {advice}"
        ) from error
    return model, f"timm:{architecture}"


def _hub_cached_file(hub_id: str | None) -> str | None:
    """The weights file of a timm model in the Hugging Face cache, or None."""
    if hub_id is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        cached = try_to_load_from_cache(hub_id, filename)
        if isinstance(cached, str):
            return cached
    return None
