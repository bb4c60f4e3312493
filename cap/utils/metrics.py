"""The benchmark's metric: AUROC with higher scores meaning more anomalous.

Importing it imports scikit-learn (about a second): modules import it where AUROC is needed.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from cap.utils.errors import DataError

#: The metrics of every run, by record field (:func:`score_metrics`).
METRICS: tuple[str, ...] = ("auroc",)


def score_metrics(is_anomaly: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRICS` of ``scores`` (n,) for labels ``is_anomaly`` (n,)."""
    return {"auroc": auroc(is_anomaly, scores)}


def auroc(is_anomaly: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (n,) for labels ``is_anomaly`` (n,), 1 = anomaly."""
    is_anomaly = np.asarray(is_anomaly)
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise DataError(f"{int((~np.isfinite(scores)).sum())} anomaly scores are NaN or inf")
    if len(np.unique(is_anomaly)) != 2:
        raise DataError("AUROC needs both normal (0) and anomalous (1) test items")
    return float(roc_auc_score(is_anomaly, scores))
