"""The benchmark's metrics of a run's scores, higher scores meaning more anomalous and
anomalies the positive class.

- ``auroc``: area under the ROC curve (every table's default);
- ``aupr``: area under the precision-recall curve, anomalies positive (average precision,
  the step-wise sum that does not interpolate): it depends on the share of anomalies;
- ``fpr95``: the share of normal items scored at or above the threshold that catches 95%
  of the anomalies (FPR at 95% TPR; lower is better), the out-of-distribution field's
  operating point.

Every metric is computed once, from the ROC counts (:func:`roc_metrics`): of a run's scores
as they are, and of each bootstrap resample of them (:mod:`cap.reporting.bootstrap`); the
tests check them against their definitions and scikit-learn.
"""

from __future__ import annotations

import numpy as np

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
    return {name: float(values[0]) for name, values in roc_metrics(is_anomaly, scores).items()}


def auroc(is_anomaly: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (n,) for labels ``is_anomaly`` (n,), 1 = anomaly."""
    return score_metrics(is_anomaly, scores)["auroc"]


def roc_metrics(
    is_anomaly: np.ndarray,
    scores: np.ndarray,
    counts: np.ndarray | None = None,
    tpr_target: float = TPR_TARGET,
) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRICS` of ``scores`` (M,) for labels ``is_anomaly`` (M,),
    once per row of ``counts`` (B, M): how often each item counts (a bootstrap resample's
    draws; default one row of ones, the items as they are). Each (B,); NaN where a row
    holds no anomaly or no normal item; ``fpr95`` at ``tpr_target``.

    The true and false positives at each distinct score (descending, ties together, as
    scikit-learn counts them) are cumulative sums of the counts in score order; the ROC
    curve starts at (0, 0), AUROC is its trapezoid area, AUPR the step-wise sum of the
    precision over the recall gained (scikit-learn's average precision)."""
    if counts is None:
        counts = np.ones((1, len(scores)))
    is_anomaly, scores = np.asarray(is_anomaly, dtype=bool), np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the last image of each distinct score
    weights = np.asarray(counts, dtype=np.float64)[:, order]  # (B, M)
    anomalous = is_anomaly[order]
    start = np.zeros((len(weights), 1))
    tp = np.cumsum(weights * anomalous, axis=1)[:, last]  # (B, K), K distinct scores
    fp = np.cumsum(weights * ~anomalous, axis=1)[:, last]
    positives, negatives = tp[:, -1:], fp[:, -1:]
    valid = (positives[:, 0] > 0) & (negatives[:, 0] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.hstack([start, tp / positives])  # (B, K + 1), from the (0, 0) point
        fpr = np.hstack([start, fp / negatives])
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    metrics = {
        "auroc": np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1),
        "aupr": np.sum(np.diff(tpr, axis=1) * precision, axis=1),
        "fpr95": fpr[np.arange(len(fpr)), np.argmax(tpr >= tpr_target, axis=1)],
    }
    return {name: np.where(valid, values, np.nan) for name, values in metrics.items()}


def _checked(is_anomaly: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    is_anomaly = np.asarray(is_anomaly)
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise DataError(f"{int((~np.isfinite(scores)).sum())} anomaly scores are NaN or inf")
    if len(np.unique(is_anomaly)) != 2:
        raise DataError("AUROC needs both normal (0) and anomalous (1) test items")
    return is_anomaly, scores
