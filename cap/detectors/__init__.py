"""Anomaly detectors on pretrained features, registered by method name.

Importing this package registers every detector in :data:`DETECTORS` without
importing torch (CAP's model and training load when a CAP detector is fitted) or the
optional PyOD (imported when a ``pyod`` detector is fitted).
"""

from cap.detectors.base import (
    DETECTORS,
    BaseDetector,
    KNNDetector,
    TrainableDetector,
    check_is_fitted,
    detector_class,
    make_detector,
)
from cap.detectors.cap_detector import CAPDetector
from cap.detectors.gaussian import MahalanobisDetector
from cap.detectors.knn import DN2Detector, NoAdaptationDetector
from cap.detectors.patchcore import PatchCoreDetector
from cap.detectors.pyod_adapter import PyODDetector

__all__ = [
    "DETECTORS",
    "BaseDetector",
    "CAPDetector",
    "DN2Detector",
    "KNNDetector",
    "MahalanobisDetector",
    "NoAdaptationDetector",
    "PatchCoreDetector",
    "PyODDetector",
    "TrainableDetector",
    "check_is_fitted",
    "detector_class",
    "make_detector",
]
