"""Torch's two entry points that take user input: a device name and a file to load.

Both raise :mod:`cap.utils.errors` types with a message naming the bad value. torch is
imported inside the functions: planning imports ``cap.utils`` without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cap.utils.errors import CapError, ConfigError, MissingResourceError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; otherwise the named, available device."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use auto or cpu")
    return device


def load_torch_file(
    path: str | os.PathLike[str], what: str, error: type[CapError] = ConfigError
) -> Any:
    """A file of ``torch.save`` read on the CPU without unpickling code (``weights_only``):
    :class:`MissingResourceError` where it is absent, ``error`` naming ``what`` it should
    have been where it cannot be read."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingResourceError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as cause:  # unpickling a foreign file fails in many ways
        raise error(f"cannot load {what} {path}: {cause!r}") from cause
