"""The run metrics against a direct computation from their definitions, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from cap.metrics.image import METRICS, auroc, roc_metrics, score_metrics
from cap.utils.errors import DataError


def scored(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Labels (a third anomalous) and scores rounded to force ties."""
    rng = np.random.default_rng(seed)
    is_anomaly = (rng.random(n) < 1 / 3).astype(int)
    scores = np.round(rng.normal(size=n) + 1.2 * is_anomaly, 1)
    return is_anomaly, scores


def direct(is_anomaly: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The definitions, threshold by threshold (a score at or above t is called anomalous)."""
    anomalous, normal = scores[is_anomaly == 1], scores[is_anomaly == 0]
    pairs = (anomalous[:, None] > normal[None, :]) + 0.5 * (anomalous[:, None] == normal[None, :])
    precision_recall = []
    for t in np.unique(scores)[::-1]:  # from the highest threshold down
        caught = scores >= t
        precision_recall.append(
            (is_anomaly[caught].mean(), (anomalous >= t).mean(), (normal >= t).mean())
        )
    average_precision, previous_recall = 0.0, 0.0
    for precision, recall, _ in precision_recall:
        average_precision += (recall - previous_recall) * precision
        previous_recall = recall
    fpr95 = next(fpr for _, recall, fpr in precision_recall if recall >= 0.95)
    return {"auroc": pairs.mean(), "aupr": average_precision, "fpr95": fpr95}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_metric_equals_its_direct_computation(seed):
    is_anomaly, scores = scored(seed)
    ours, theirs = score_metrics(is_anomaly, scores), direct(is_anomaly, scores)
    assert set(ours) == set(METRICS)
    for name in METRICS:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-12), name
    assert ours["auroc"] == auroc(is_anomaly, scores)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_metric_equals_scikit_learns(seed):
    """The field's reference implementation, to the last rounding."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    is_anomaly, scores = scored(seed)
    ours = score_metrics(is_anomaly, scores)
    assert ours["auroc"] == pytest.approx(roc_auc_score(is_anomaly, scores), abs=1e-14)
    assert ours["aupr"] == pytest.approx(average_precision_score(is_anomaly, scores), abs=1e-14)


def test_fpr_at_95_tpr_on_a_hand_made_ranking():
    # 20 anomalies: the 19th highest (95 %) sits below 3 of the 10 normal items
    anomalies = np.r_[np.arange(18) + 100.0, 5.0, 1.0]
    normal = np.array([50.0, 7.0, 6.0, 4.0, 3.0, 2.0, 0.5, 0.4, 0.3, 0.2])
    is_anomaly = np.r_[np.ones(20, int), np.zeros(10, int)]
    scores = np.r_[anomalies, normal]
    assert score_metrics(is_anomaly, scores)["fpr95"] == pytest.approx(0.3)  # 50, 7, 6 are ≥ 5
    assert roc_metrics(is_anomaly, scores, tpr_target=0.9)["fpr95"] == 0.0  # the 18 highest


def test_metrics_refuse_non_finite_scores_and_one_class():
    with pytest.raises(DataError, match="1 anomaly scores are NaN"):
        score_metrics(np.array([0, 1]), np.array([0.1, np.inf]))
    with pytest.raises(DataError, match="both normal"):
        score_metrics(np.array([1, 1]), np.array([0.1, 0.2]))
