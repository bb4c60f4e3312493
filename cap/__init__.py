"""capbench: CAP (Constrained Adaptive Projection, IJCAI 2022) and its baselines."""

from importlib.metadata import PackageNotFoundError, version

from cap.detectors import (
    DETECTORS,
    BaseDetector,
    CAPDetector,
    DN2Detector,
    NoAdaptationDetector,
    make_detector,
)
from cap.model import CAPModel

try:
    __version__ = version("capbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

__all__ = [
    "DETECTORS",
    "BaseDetector",
    "CAPDetector",
    "CAPModel",
    "DN2Detector",
    "NoAdaptationDetector",
    "__version__",
    "make_detector",
]
