"""Bootstrap intervals over one category's test images: the stratified resamples, each
resample's metrics against a direct computation on the resampled images, the binned pixel
metrics against the exact ones, and the pairing of differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cap.metrics.image import METRICS, roc_metrics, score_metrics
from cap.metrics.localization import PIXEL_METRICS, full_resolution, pixel_metrics
from cap.reporting.bootstrap import (
    MethodRuns,
    bootstrap,
    pixel_histograms,
    resample_counts,
    resample_pixel_metrics,
    stratified_resamples,
)
from cap.utils.errors import DataError

NAMES = ["good", "crack", "cut", "hole"]


def bootstrap_table_of(*args, **kwargs) -> pd.DataFrame:
    """Each method's metrics with their intervals, from one bootstrap."""
    return bootstrap(*args, **kwargs).table()


def paired_differences_of(*args, pairs=None, **kwargs) -> pd.DataFrame:
    """Each pair's differences over the same resamples, from one bootstrap."""
    return bootstrap(*args, **kwargs).differences(pairs)


def split(n_good: int, n_defect: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``is_anomaly`` and ``labels`` (defect types 1–3) of a test split, good images first."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_good, int), rng.integers(1, len(NAMES), n_defect)]
    return labels != 0, labels


def image_scores(is_anomaly: np.ndarray, shift: float, seed: int) -> np.ndarray:
    """Normal scores, anomalies shifted by ``shift``, rounded to force ties."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(size=len(is_anomaly)) + shift * is_anomaly, 1)


def localized(
    n_good: int = 16, n_defect: int = 24, size: int = 96, grid: int = 12, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A split with masks of one to three elliptic regions per defective image, and coarse
    maps that see the defects through noise: is_anomaly, labels, masks, maps (2 seeds)."""
    rng = np.random.default_rng(seed)
    is_anomaly, labels = split(n_good, n_defect, seed)
    rows, columns = np.mgrid[:size, :size]
    masks = np.zeros((len(labels), size, size), dtype=bool)
    for image in np.flatnonzero(is_anomaly):
        for _ in range(rng.integers(1, 4)):
            (y, x), (height, width) = rng.uniform(0, size, 2), rng.uniform(1.5, size / 6, 2)
            masks[image] |= ((rows - y) / height) ** 2 + ((columns - x) / width) ** 2 <= 1
    cell = size // grid
    coarse = masks.reshape(len(masks), grid, cell, grid, cell).mean(axis=(2, 4))
    maps = np.stack([coarse + 0.4 * rng.normal(size=coarse.shape) for _ in range(2)])
    return is_anomaly, labels, masks, maps.astype(np.float32)


def test_resamples_keep_the_strata_of_the_split_and_are_seeded():
    is_anomaly = np.r_[np.ones(7, bool), np.zeros(5, bool), np.ones(3, bool)]
    indices = stratified_resamples(is_anomaly, 200, seed=3)
    assert indices.shape == (200, 15)
    assert (is_anomaly[indices] == is_anomaly).all()  # each draw from its own stratum
    counts = resample_counts(indices, 15)
    assert (counts[:, ~is_anomaly].sum(axis=1) == 5).all()
    assert (counts[:, is_anomaly].sum(axis=1) == 10).all()
    assert (counts[:, is_anomaly].max(axis=1) > 1).any()  # with replacement
    assert np.array_equal(indices, stratified_resamples(is_anomaly, 200, seed=3))
    assert not np.array_equal(indices, stratified_resamples(is_anomaly, 200, seed=4))


@pytest.mark.parametrize("seed", [0, 1])
def test_each_resample_has_the_metrics_of_its_images_ties_and_duplicates_included(seed):
    is_anomaly, _ = split(30, 50, seed)
    scores = image_scores(is_anomaly, 1.0, seed)
    indices = stratified_resamples(is_anomaly, 20, seed)
    values = roc_metrics(is_anomaly, scores, resample_counts(indices, 80))
    for b, drawn in enumerate(indices):
        direct = score_metrics(is_anomaly[drawn], scores[drawn])
        for metric in METRICS:
            assert values[metric][b] == pytest.approx(direct[metric], abs=1e-12)


def test_image_estimates_are_the_whole_split_and_intervals_the_resamples_seed_mean():
    is_anomaly, labels = split(30, 50)
    seeds = [image_scores(is_anomaly, 1.0, 10), image_scores(is_anomaly, 1.5, 11)]
    methods = {"knn": MethodRuns(seeds)}
    table = bootstrap_table_of(is_anomaly, labels, NAMES, methods, resamples=1, seed=5)
    table = table.set_index("metric")
    drawn = stratified_resamples(is_anomaly, 1, seed=5)[0]
    for metric in METRICS:
        whole = np.mean([score_metrics(is_anomaly, s)[metric] for s in seeds])
        resampled = np.mean([score_metrics(is_anomaly[drawn], s[drawn])[metric] for s in seeds])
        assert table.loc[metric, "estimate"] == pytest.approx(whole, abs=1e-12)
        assert table.loc[metric, "low"] == pytest.approx(resampled, abs=1e-12)
        assert table.loc[metric, "high"] == pytest.approx(resampled, abs=1e-12)
    assert (table["seeds"] == 2).all()
    assert not set(PIXEL_METRICS) & set(table.index)  # no maps, no pixel metrics


def test_the_interval_holds_the_estimate_and_narrows_with_a_larger_split():
    widths = []
    for n in (20, 200):  # 40 and 400 images of the same distribution
        is_anomaly, labels = split(n, n, seed=n)
        methods = {"knn": MethodRuns([image_scores(is_anomaly, 1.5, n)])}
        table = bootstrap_table_of(is_anomaly, labels, NAMES, methods, resamples=500, seed=0)
        auroc = table.set_index("metric").loc["auroc"]
        assert auroc["low"] < auroc["estimate"] < auroc["high"]
        assert auroc["resamples"] == 500
        widths.append(auroc["high"] - auroc["low"])
    assert widths[1] < widths[0] / 2  # about √10 narrower


def test_defect_type_auroc_is_good_images_against_that_type_only():
    is_anomaly, labels = split(30, 50, seed=2)
    scores = image_scores(is_anomaly, 1.0, 2) + 2.0 * (labels == 2)  # cuts stand out more
    indices = stratified_resamples(is_anomaly, 1, seed=1)
    table = bootstrap_table_of(is_anomaly, labels, NAMES, {"knn": MethodRuns([scores])}, None, 1, 1)
    table = table.set_index("metric")
    drawn = indices[0]
    for label, name in enumerate(NAMES[1:], start=1):
        kept = (labels == 0) | (labels == label)
        in_resample = drawn[kept[drawn]]
        row = table.loc[f"auroc:{name}"]
        assert row["estimate"] == pytest.approx(roc_auc_score(labels[kept] != 0, scores[kept]))
        assert row["low"] == pytest.approx(
            roc_auc_score(labels[in_resample] != 0, scores[in_resample]), abs=1e-12
        )
    assert table.loc["auroc:cut", "estimate"] > table.loc["auroc:crack", "estimate"]


def test_a_defect_type_a_resample_misses_gives_it_no_value():
    is_anomaly, labels = split(20, 30)
    labels[-1] = 3
    labels[(labels == 3) & (np.arange(len(labels)) < len(labels) - 1)] = 1  # one hole only
    table = bootstrap_table_of(
        is_anomaly,
        labels,
        NAMES,
        {"knn": MethodRuns([image_scores(is_anomaly, 1.0, 0)])},
        resamples=300,
    ).set_index("metric")
    missed = 300 - table.loc["auroc:hole", "resamples"]
    assert 0.25 * 300 < missed < 0.5 * 300  # (1 − 1/30)^30 ≈ 0.36 of them
    assert table.loc["auroc", "resamples"] == 300


def test_binned_pixel_metrics_are_the_exact_ones_on_the_split_and_on_a_resample():
    is_anomaly, _, masks, maps = localized()
    full = full_resolution(maps[0], masks.shape[1:])
    histograms = pixel_histograms(masks, full)
    exact = pixel_metrics(masks, maps[0])
    whole = resample_pixel_metrics(histograms, np.ones((1, len(masks))))
    drawn = stratified_resamples(is_anomaly, 1, seed=2)[0]
    resampled = resample_pixel_metrics(histograms, resample_counts(drawn[None], len(masks)))
    exact_resampled = pixel_metrics(masks[drawn], maps[0][drawn])  # duplicates kept
    coarse = resample_pixel_metrics(pixel_histograms(masks, full, bins=6), np.ones((1, 40)))
    for metric in PIXEL_METRICS:
        assert whole[metric][0] == pytest.approx(exact[metric], abs=0.002)
        assert resampled[metric][0] == pytest.approx(exact_resampled[metric], abs=0.002)
        assert resampled[metric][0] != pytest.approx(whole[metric][0], abs=1e-4)
        assert coarse[metric][0] != pytest.approx(exact[metric], abs=0.002)  # bins matter


def test_pixel_estimates_are_the_exact_seed_mean_and_methods_without_maps_have_none():
    is_anomaly, labels, masks, maps = localized()
    scores = [image_scores(is_anomaly, 1.0, s) for s in (0, 1)]
    methods = {"patchcore": MethodRuns(scores, list(maps)), "knn": MethodRuns(scores)}
    table = bootstrap_table_of(is_anomaly, labels, NAMES, methods, masks, resamples=200)
    rows = table.set_index(["method", "metric"])
    for metric in PIXEL_METRICS:
        exact = np.mean([pixel_metrics(masks, m)[metric] for m in maps])
        row = rows.loc[("patchcore", metric)]
        assert row["estimate"] == pytest.approx(exact, abs=1e-12)
        assert row["low"] < row["estimate"] < row["high"]
        assert ("knn", metric) not in rows.index
    no_masks = bootstrap_table_of(is_anomaly, labels, NAMES, methods, None, resamples=10)
    assert not set(PIXEL_METRICS) & set(no_masks["metric"])


def test_pixel_estimates_given_by_the_records_are_used_as_they_are():
    is_anomaly, labels, masks, maps = localized()
    scores = [image_scores(is_anomaly, 1.0, s) for s in (0, 1)]
    known = [{"pixel_auroc": 0.5 + s / 10, "aupro": 0.25} for s in (0, 1)]
    methods = {"patchcore": MethodRuns(scores, list(maps), known)}
    rows = bootstrap_table_of(is_anomaly, labels, NAMES, methods, masks, resamples=20)
    estimates = rows.set_index("metric")["estimate"]
    assert estimates["pixel_auroc"] == pytest.approx(0.55) and estimates["aupro"] == 0.25
    with pytest.raises(DataError, match="2 seeds of scores but 1 of pixel metrics"):
        MethodRuns(scores, list(maps), known[:1])


def test_a_method_against_itself_differs_by_exactly_zero():
    is_anomaly, labels, masks, maps = localized()
    runs = MethodRuns([image_scores(is_anomaly, 1.0, 0)], [maps[0]])
    frame = paired_differences_of(
        is_anomaly, labels, NAMES, {"a": runs, "b": runs}, masks, resamples=100
    )
    assert len(frame) == len(METRICS) + 3 + len(PIXEL_METRICS)  # three defect types
    assert (frame[["difference", "low", "high"]] == 0).all().all()
    assert (frame["p_value"] == 1).all()


def test_a_clearly_better_method_differs_above_zero():
    is_anomaly, labels = split(60, 60)
    methods = {
        "good": MethodRuns([image_scores(is_anomaly, 3.0, 0)]),
        "weak": MethodRuns([image_scores(is_anomaly, 0.3, 1)]),
    }
    frame = paired_differences_of(is_anomaly, labels, NAMES, methods, resamples=500)
    auroc = frame.set_index("metric").loc["auroc"]
    assert (auroc["method"], auroc["versus"]) == ("good", "weak")
    assert 0 < auroc["low"] < auroc["difference"] < auroc["high"]
    assert auroc["p_value"] == pytest.approx(2 / 501)  # no resample at or below zero
    fpr95 = frame.set_index("metric").loc["fpr95"]
    assert fpr95["high"] < 0  # lower is better: the good method's is lower


def test_pairing_narrows_the_difference_of_correlated_methods():
    is_anomaly, labels = split(40, 40)
    shared = image_scores(is_anomaly, 1.0, 0)  # what makes an image hard, for both
    rng = np.random.default_rng(1)
    methods = {
        "a": MethodRuns([shared + 0.1 * rng.normal(size=80)]),
        "b": MethodRuns([shared + 0.1 * rng.normal(size=80) + 0.1 * is_anomaly]),
    }
    replicates = bootstrap(is_anomaly, labels, NAMES, methods, resamples=500)
    table = replicates.table().set_index(["method", "metric"])
    widths = [table.loc[(m, "auroc"), "high"] - table.loc[(m, "auroc"), "low"] for m in "ab"]
    differences = replicates.differences().set_index("metric").loc["auroc"]
    unpaired = np.hypot(*widths)  # the width if the two were independent
    assert differences["high"] - differences["low"] < unpaired / 3


def test_bad_input_is_rejected_with_the_reason():
    is_anomaly, labels = split(10, 10)
    scores = image_scores(is_anomaly, 1.0, 0)
    with pytest.raises(DataError, match="shape \\(19,\\) for 20 test images"):
        bootstrap_table_of(is_anomaly, labels, NAMES, {"knn": MethodRuns([scores[:-1]])})
    with pytest.raises(DataError, match="2 seeds of scores but 1 of anomaly maps"):
        MethodRuns([scores, scores], [np.zeros((20, 4, 4))])
    with pytest.raises(DataError, match="0 of 10 are defective"):
        bootstrap_table_of(np.zeros(10), np.zeros(10), NAMES, {"knn": MethodRuns([scores[:10]])})
    with pytest.raises(DataError, match="non-zero exactly for the defective"):
        bootstrap_table_of(is_anomaly, np.zeros(20), NAMES, {"knn": MethodRuns([scores])})
    with pytest.raises(DataError, match="anomaly maps of shape \\(19, 4, 4\\)"):
        bootstrap_table_of(
            is_anomaly,
            labels,
            NAMES,
            {"knn": MethodRuns([scores], [np.zeros((19, 4, 4))])},
            np.zeros((20, 8, 8), bool),
        )
    with pytest.raises(DataError, match="unknown methods in pairs: \\['cap'\\]"):
        paired_differences_of(
            is_anomaly, labels, NAMES, {"knn": MethodRuns([scores])}, pairs=[("knn", "cap")]
        )
