"""Anomaly detectors on pretrained features, registered by method name.

Importing this package registers every detector in :data:`DETECTORS`.
"""

from cap.detectors.base import DETECTORS, BaseDetector, check_is_fitted, make_detector
from cap.detectors.cap_detector import CAPDetector
from cap.detectors.knn import DN2Detector, NoAdaptationDetector

__all__ = [
    "DETECTORS",
    "BaseDetector",
    "CAPDetector",
    "DN2Detector",
    "NoAdaptationDetector",
    "check_is_fitted",
    "make_detector",
]
