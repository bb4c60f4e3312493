"""Anomaly detectors on pretrained features, registered by method name.

The registry (:mod:`cap.detectors.registry`) lists capbench's own detectors and those of
installed plugins (entry-point group ``capbench.detectors``). A detector module not
imported below (a plugin's, or one of this package's) loads when its method is first
used; torch loads when CAP fits, PyOD when a ``pyod`` detector does.
"""

from cap.detectors.base import (
    BaseDetector,
    KNNDetector,
    TrainableDetector,
    check_is_fitted,
)
from cap.detectors.cap_detector import CAPDetector
from cap.detectors.gaussian import MahalanobisDetector
from cap.detectors.knn import DN2Detector, NoAdaptationDetector
from cap.detectors.patchcore import PatchCoreDetector
from cap.detectors.pyod_adapter import PyODDetector
from cap.detectors.registry import DETECTORS, detector_class, detector_names, make_detector

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
    "detector_names",
    "make_detector",
]
