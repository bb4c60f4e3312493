"""Rank concordance across backbones: method means, Kendall's τ-b per pair of backbones,
Kendall's W over all, their bootstrap intervals over classes, and the figure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from cap.reporting.claims import t_interval
from cap.reporting.concordance import (
    CONCORDANCE_SIZE,
    MEANS_COLUMNS,
    NULL_HYPOTHESIS,
    PAIR_COLUMNS,
    STATISTIC_COLUMNS,
    best_first_ranks,
    concordance_markdown,
    kendall_tau_b,
    kendall_w,
    method_means,
    plot_methods_by_backbones,
    rank_concordance,
    write_concordance,
)
from cap.reporting.figures import DPI
from cap.utils.errors import DataError

BACKBONES = ("cifar10_mnv2", "cifar10_inat", "cifar10_mnv1", "cifar10_shufflenet", "cifar10_lite0")
METHODS = ("cap", "no_adaptation", "dn2", "cosine_knn", "mahalanobis", "ecod", "iforest", "hbos")
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship")


def spec_for(effects: Mapping[str, Mapping[str, float]]) -> dict:
    """A table spec with one entry per variant of ``effects`` (dataset → variant → AUROC),
    on the datasets where it has one."""
    variants = list(dict.fromkeys(v for on in effects.values() for v in on))
    return {
        "name": "backbones",
        "title": "methods × backbones",
        "datasets": list(effects),
        "entries": [
            {"label": v.upper(), "variants": {d: v for d in effects if v in effects[d]}}
            for v in variants
        ],
    }


def make_runs(
    effects: Mapping[str, Mapping[str, float]],
    n_classes: int = 10,
    *,
    noise: float = 0.002,
    seeds: Mapping[str, int] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Runs whose AUROC is the variant's effect on the dataset plus a class effect shared by
    every method and backbone (the same images) plus independent noise per run."""
    rng = np.random.default_rng(seed)
    class_effect = rng.normal(0.0, 0.05, n_classes)
    rows = []
    for dataset, on_dataset in effects.items():
        for variant, effect in on_dataset.items():
            for cls in range(n_classes):
                for run_seed in range((seeds or {}).get(variant, 1)):
                    auroc = effect + class_effect[cls] + noise * rng.normal()
                    rows.append({
                        "dataset": dataset, "cls": cls, "class_name": f"class{cls}",
                        "variant": variant, "seed": run_seed, "auroc": auroc,
                        "aupr": auroc - 0.1, "fpr95": 1.0 - auroc,
                    })  # fmt: skip
    return pd.DataFrame(rows)


def same_order(
    datasets: Sequence[str] = BACKBONES, methods: Sequence[str] = METHODS
) -> dict[str, dict[str, float]]:
    """Every dataset ranks the methods alike: the first best, 4 points apart."""
    return {d: {v: 0.90 - 0.04 * i for i, v in enumerate(methods)} for d in datasets}


def test_method_means_are_class_means_of_seed_means_with_their_t_interval():
    effects = same_order(BACKBONES[:2], METHODS[:4])
    runs = make_runs(effects, 6, noise=0.01, seeds={"dn2": 3})
    means = method_means(runs, spec_for(effects))
    assert list(means.columns) == list(MEANS_COLUMNS) and len(means) == 2 * 4
    chosen = runs[(runs["dataset"] == "cifar10_inat") & (runs["variant"] == "dn2")]
    per_class = chosen.groupby("cls")["auroc"].mean().to_numpy() * 100  # (6,)
    row = means.set_index(["dataset", "entry"]).loc[("cifar10_inat", "DN2")]
    assert row["mean_pct"] == pytest.approx(per_class.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(t_interval(per_class))
    assert row["ci_low"] < row["mean_pct"] < row["ci_high"]
    assert (row["n_classes"], row["n_seeds"], row["variant"]) == (6, 3, "dn2")
    # the per-dataset order: the first method best
    first = means[means["dataset"] == "cifar10_mnv2"]
    assert list(first["rank"]) == [1.0, 2.0, 3.0, 4.0]


def test_identical_rankings_agree_everywhere_and_reject_the_null():
    effects = same_order()
    runs = make_runs(effects)
    pairs, overall = rank_concordance(runs, spec_for(effects), permutations=2000)
    assert list(pairs.columns) == list(PAIR_COLUMNS) and len(pairs) == 5 * 4 // 2
    assert (pairs["kendall_tau"] == 1.0).all() and (pairs["spearman_rho"] == 1.0).all()
    assert (pairs["tau_ci_low"] == 1.0).all() and (pairs["tau_ci_high"] == 1.0).all()
    assert overall["kendall_w"] == pytest.approx(1.0)
    assert overall["p_value"] == pytest.approx(1 / 2001)  # no permutation reaches W = 1
    assert (overall["n_methods"], overall["n_datasets"], overall["n_classes"]) == (8, 5, 10)
    assert overall["null_hypothesis"] == NULL_HYPOTHESIS and overall["left_out_methods"] == []


def test_a_ranking_reversed_on_one_backbone_gives_tau_minus_one_for_its_pairs():
    effects = same_order(BACKBONES[:3], METHODS[:5])
    effects["cifar10_mnv1"] = {v: 0.70 + 0.04 * i for i, v in enumerate(METHODS[:5])}
    pairs, overall = rank_concordance(make_runs(effects), spec_for(effects), permutations=500)
    tau = {(a, b): t for a, b, t in pairs[["dataset_a", "dataset_b", "kendall_tau"]].to_numpy()}
    assert tau["cifar10_mnv2", "cifar10_inat"] == 1.0
    assert tau["cifar10_mnv2", "cifar10_mnv1"] == tau["cifar10_inat", "cifar10_mnv1"] == -1.0
    assert overall["kendall_w"] < 0.2  # two orders against their reverse: little concordance


def test_unrelated_rankings_give_w_near_its_null_and_large_p_values():
    results = []
    for draw in range(12):  # one draw's W spreads widely about 1/k: look at a dozen
        rng = np.random.default_rng(draw)
        effects = {
            d: dict(zip(METHODS, 0.60 + 0.04 * rng.permutation(len(METHODS)), strict=True))
            for d in BACKBONES
        }
        runs, spec = make_runs(effects), spec_for(effects)
        _, overall = rank_concordance(runs, spec, seed=1, resamples=20, permutations=100)
        assert overall["w_ci_low"] <= overall["kendall_w"] <= overall["w_ci_high"]
        results.append((overall["kendall_w"], overall["p_value"]))
    w, p = np.array(results).T
    assert abs(w.mean() - 1 / len(BACKBONES)) < 0.06  # E[W] = 1/k under the null
    assert np.median(p) > 0.2 and (p < 0.05).sum() <= 3  # p about uniform under the null


def test_w_averages_one_over_k_on_random_permutations_and_its_ties_are_corrected():
    rng = np.random.default_rng(0)
    k, m = 4, 6
    ranks = np.argsort(rng.random((20000, k, m)), axis=-1) + 1.0  # (P, k, m) random orders
    assert kendall_w(ranks).mean() == pytest.approx(1 / k, abs=0.005)
    tied = np.array([[1.0, 2.5, 2.5, 4.0]] * 3)  # (k, m): the same ties everywhere
    assert kendall_w(tied) == pytest.approx(1.0)  # below 1 without the tie correction


def test_tau_b_matches_scipy_also_with_ties():
    rng = np.random.default_rng(3)
    means = rng.integers(0, 4, size=(3, 7)).astype(float)  # (k, m) with ties
    taus = kendall_tau_b(means)
    for a in range(3):
        for b in range(3):
            assert taus[a, b] == pytest.approx(stats.kendalltau(means[a], means[b]).statistic)


def test_the_bootstrap_interval_of_tau_contains_it_and_narrows_with_more_classes():
    methods = METHODS[:6]
    effects = {
        "cifar10_mnv2": {v: 0.80 + 0.01 * i for i, v in enumerate(methods)},
        "cifar10_lite0": {v: 0.80 + 0.01 * i for i, v in enumerate([*methods[3:], *methods[:3]])},
    }
    widths = []
    for n_classes in (10, 160):
        runs = make_runs(effects, n_classes, noise=0.03, seed=5)
        pairs, _ = rank_concordance(runs, spec_for(effects), permutations=100)
        row = pairs.iloc[0]
        assert row["tau_ci_low"] <= row["kendall_tau"] <= row["tau_ci_high"]
        widths.append(row["tau_ci_high"] - row["tau_ci_low"])
    assert widths[1] < widths[0] / 2
    # seeded: the same seed gives the same interval
    again, _ = rank_concordance(runs, spec_for(effects), permutations=100)
    pd.testing.assert_frame_equal(again, pairs)


def test_entries_and_classes_missing_somewhere_are_left_out_and_reported():
    effects = same_order(BACKBONES[:3], METHODS[:5])
    del effects["cifar10_mnv1"]["cap"]  # CAP ran on two backbones only
    runs = make_runs(effects)
    gone = (runs["dataset"] == "cifar10_inat") & (runs["variant"] == "dn2") & (runs["cls"] == 9)
    runs = runs[~gone]
    spec = spec_for(effects)
    means = method_means(runs, spec)
    assert set(means.loc[means["entry"] == "CAP", "dataset"]) == {"cifar10_mnv2", "cifar10_inat"}
    assert means.set_index(["dataset", "entry"]).loc[("cifar10_inat", "DN2"), "n_classes"] == 9
    pairs, overall = rank_concordance(runs, spec, permutations=200)
    assert overall["left_out_methods"] == ["CAP"] and "CAP" not in overall["methods"]
    assert overall["left_out_classes"] == ["9"] and overall["n_classes"] == 9
    assert (pairs["n_methods"] == 4).all()
    text = concordance_markdown(means, pairs, overall)
    assert "left out (missing on some backbone): CAP" in text and "classes left out: 9" in text


def test_lower_is_better_reverses_the_ranks_but_not_tau_or_w():
    effects = same_order(BACKBONES[:3], METHODS[:5])
    effects["cifar10_mnv1"] = dict(reversed(list(effects["cifar10_mnv1"].items())))
    effects["cifar10_mnv1"]["cap"], effects["cifar10_mnv1"]["dn2"] = 0.70, 0.90
    runs = make_runs(effects).assign(fpr95=lambda f: f["auroc"])  # the same numbers
    spec = spec_for(effects)
    higher = method_means(runs, spec, "auroc")
    lower = method_means(runs, spec, "fpr95")
    assert list(lower["rank"]) == list(6 - higher["rank"])  # m + 1 − rank
    assert list(best_first_ranks(np.array([0.1, 0.3, 0.2]), "fpr95")) == [1, 3, 2]
    assert list(best_first_ranks(np.array([0.1, 0.3, 0.2]), "auroc")) == [3, 1, 2]
    pairs_h, overall_h = rank_concordance(runs, spec, "auroc", resamples=300, permutations=300)
    pairs_l, overall_l = rank_concordance(runs, spec, "fpr95", resamples=300, permutations=300)
    pd.testing.assert_frame_equal(pairs_h, pairs_l)
    for key in ("kendall_w", "w_ci_low", "w_ci_high", "p_value"):
        assert overall_h[key] == pytest.approx(overall_l[key])


def test_too_few_datasets_methods_or_matching_classes_are_data_errors():
    effects = same_order(BACKBONES[:2], METHODS[:4])
    runs, spec = make_runs(effects), spec_for(effects)
    with pytest.raises(DataError, match="at least 2 datasets"):
        rank_concordance(runs, spec, datasets=["cifar10_mnv2"])
    with pytest.raises(DataError, match="at least 2 datasets"):  # a dataset without runs
        rank_concordance(runs[runs["dataset"] == "cifar10_mnv2"], spec)
    few = runs[~((runs["dataset"] == "cifar10_inat") & runs["variant"].isin(["cap", "dn2"]))]
    with pytest.raises(DataError, match=r"at least 3 methods .* only \['NO_ADAPTATION', 'COS"):
        rank_concordance(few, spec)
    other = runs.assign(
        class_name=np.where(runs["dataset"] == "cifar10_inat", "T-shirt", runs["class_name"])
    )
    with pytest.raises(DataError, match="must hold the same images"):
        rank_concordance(other, spec)


def test_the_figure_and_files(tmp_path):
    effects = same_order(BACKBONES, (*METHODS, "lof"))
    runs = make_runs(effects, noise=0.02)
    spec = spec_for(effects)
    means = method_means(runs, spec)
    paths = plot_methods_by_backbones(means, tmp_path / "fig", title="methods × backbones")
    png, pdf = paths
    with Image.open(png) as image:
        assert image.size == (round(CONCORDANCE_SIZE[0] * DPI), round(CONCORDANCE_SIZE[1] * DPI))
        assert np.asarray(image.convert("L")).std() > 1.0
    assert pdf.read_bytes().startswith(b"%PDF")
    pairs, overall = rank_concordance(runs, spec, resamples=200, permutations=200)
    written = write_concordance(means, pairs, overall, tmp_path / "c", title="Concordance")
    assert [p.name for p in written] == ["c.csv", "c_means.csv", "c.md", "c.png", "c.pdf"]
    table = pd.read_csv(written[0])
    assert list(table.columns) == list(STATISTIC_COLUMNS)
    assert list(table["statistic"].value_counts().sort_index()) == [10, 1, 10]  # τ, W, ρ
    w = table[table["statistic"] == "kendall_w"].iloc[0]
    assert (w["estimate"], w["p_value"]) == pytest.approx((overall["kendall_w"], 1 / 201))
    text = written[2].read_text()
    assert text.startswith("**Concordance**") and "| NO_ADAPTATION | " in text
    assert re.search(r"Kendall's W across the 5 backbones: 1\.00 \[0\.9\d, 1\.00\]", text)
    assert NULL_HYPOTHESIS in text
