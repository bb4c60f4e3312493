"""capbench: CAP (Constrained Adaptive Projection, IJCAI 2022) and its baselines.

The public names are imported lazily (PEP 562), so that light sub-modules used by the
workflow (``cap.evaluation.records``, ``cap.evaluation.protocol``…) do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("capbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

#: Public name → the module that defines it.
_PUBLIC = {
    "DETECTORS": "cap.detectors",
    "BaseDetector": "cap.detectors",
    "CAPDetector": "cap.detectors",
    "DN2Detector": "cap.detectors",
    "NoAdaptationDetector": "cap.detectors",
    "make_detector": "cap.detectors",
    "CAPModel": "cap.detectors.cap_model",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'cap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
