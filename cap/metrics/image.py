"""The benchmark's metrics of a run's scores, higher scores meaning more anomalous and
anomalies the positive class.

- ``auroc``: area under the ROC curve (every table's default);
- ``aupr``: area under the precision-recall curve, anomalies positive (average precision,
  the step-wise sum that does not interpolate): it depends on the share of anomalies;
- ``fpr95``: the share of normal items scored at or above the threshold that catches 95%
  of the anomalies (FPR at 95% TPR; lower is better), the out-of-distribution field's
  operating point.

Importing it imports scikit-learn (about a second): modules import it where a metric is
needed.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from cap.utils.errors import DataError

#: The metrics of every run, by record field (:func:`score_metrics`).
METRICS: tuple[str, ...] = ("auroc", "aupr", "fpr95")
#: Metrics where lower is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"fpr95"})
#: The true-positive rate of the ``fpr95`` operating point.
TPR_TARGET = 0.95


def score_metrics(is_anomaly: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRICS` of ``scores`` (n,) for labels ``is_anomaly`` (n,)."""
    is_anomaly, scores = _checked(is_anomaly, scores)
    return {
        "auroc": float(roc_auc_score(is_anomaly, scores)),
        "aupr": float(average_precision_score(is_anomaly, scores)),
        "fpr95": fpr_at_tpr(is_anomaly, scores),
    }


def auroc(is_anomaly: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (n,) for labels ``is_anomaly`` (n,), 1 = anomaly."""
    return float(roc_auc_score(*_checked(is_anomaly, scores)))


def fpr_at_tpr(is_anomaly: np.ndarray, scores: np.ndarray, tpr: float = TPR_TARGET) -> float:
    """The false-positive rate at the highest threshold whose true-positive rate reaches
    ``tpr``: every threshold of the ROC curve is kept, so that ties and steps are exact."""
    is_anomaly, scores = _checked(is_anomaly, scores)
    false_positive, true_positive, _ = roc_curve(is_anomaly, scores, drop_intermediate=False)
    return float(false_positive[np.searchsorted(true_positive, tpr, side="left")])


def _checked(is_anomaly: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    is_anomaly = np.asarray(is_anomaly)
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise DataError(f"{int((~np.isfinite(scores)).sum())} anomaly scores are NaN or inf")
    if len(np.unique(is_anomaly)) != 2:
        raise DataError("AUROC needs both normal (0) and anomalous (1) test items")
    return is_anomaly, scores
