"""The paper's claims judged with uncertainty: the verdict logic and the paired design."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cap.evaluation.jobs import ClaimSpec
from cap.reporting.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_RUN,
    class_differences,
    judge_claims,
    paired_test,
    paper_claim_specs,
    pooled_test,
)
from cap.reporting.claims_figure import plot_claims
from cap.reporting.paper import load_paper_results
from cap.utils.errors import DataError

PAPER_FILE = Path(__file__).resolve().parents[1] / "config" / "paper_results.yaml"


def test_an_interval_above_zero_holds():
    test = paired_test(np.array([1.0, 2.0, 1.5, 2.5, 1.2]))
    assert test.verdict == HOLDS and 0 < test.ci_low < test.mean < test.ci_high
    assert test.n == 5 and test.mean == pytest.approx(1.64)
    direct = stats.t.interval(0.95, 4, loc=1.64, scale=stats.sem([1.0, 2.0, 1.5, 2.5, 1.2]))
    assert (test.ci_low, test.ci_high) == pytest.approx(direct)
    assert test.wilcoxon_p == pytest.approx(0.0625)  # exact: all 5 signs positive, 2/2^5


def test_an_interval_below_zero_does_not_hold():
    assert paired_test(np.array([-1.0, -2.0, -1.5, -0.8])).verdict == FAILS


def test_an_interval_spanning_zero_is_inconclusive():
    test = paired_test(np.array([2.0, -1.0, 0.5, -0.5]))
    assert test.verdict == INCONCLUSIVE and test.ci_low < 0 < test.ci_high


def test_a_single_class_is_inconclusive_whatever_its_sign():
    test = paired_test(np.array([5.0]))
    assert test.verdict == INCONCLUSIVE and test.mean == 5.0
    assert math.isnan(test.ci_low) and math.isnan(test.wilcoxon_p)


def test_ties_are_inconclusive_and_equal_gaps_are_judged_by_their_sign():
    zeros = paired_test(np.zeros(4))
    assert zeros.verdict == INCONCLUSIVE and (zeros.ci_low, zeros.ci_high) == (0.0, 0.0)
    assert math.isnan(zeros.wilcoxon_p)  # no non-zero difference to rank
    assert paired_test(np.full(3, 0.5)).verdict == HOLDS  # no spread: the interval is the point


def runs_frame(values: dict[tuple[str, str, int], float], dataset: str = "cifar10") -> pd.DataFrame:
    """Runs of (variant, class, seed) → AUROC (fraction), with a demo-like scale."""
    return pd.DataFrame([
        {"dataset": dataset, "variant": v, "cls": c, "seed": s, "auroc": a, "n_train": 200,
         "n_test": 2000, "epochs": 10 if v != "no_adaptation" else np.nan,
         "batch_size": 64 if v != "no_adaptation" else np.nan}
        for (v, c, s), a in values.items()
    ])  # fmt: skip


def test_differences_pair_classes_after_averaging_seeds():
    runs = runs_frame({
        ("cap", "0", 0): 0.90, ("cap", "0", 1): 0.92, ("cap", "1", 0): 0.80, ("cap", "1", 1): 0.84,
        ("no_adaptation", "0", 0): 0.90, ("no_adaptation", "1", 0): 0.85,
        ("no_adaptation", "2", 0): 0.7,
    })  # fmt: skip
    differences = class_differences(runs, ("cifar10", ("cap",)), ("cifar10", ("no_adaptation",)))
    assert differences.to_dict() == pytest.approx({"0": 1.0, "1": -3.0})  # class 2: one side only
    gap = class_differences(
        runs, ("cifar10", ("cap", "no_adaptation")), ("cifar10", ("no_adaptation", "cap"))
    )
    assert gap.to_dict() == pytest.approx({"0": 2.0, "1": -6.0})  # a side may be a difference


def test_claims_are_judged_per_dataset_with_scale_and_seeds():
    paper = load_paper_results(PAPER_FILE)
    rng = np.random.default_rng(0)
    values = {}
    for cls in map(str, range(5)):
        values["no_adaptation", cls, 0] = 0.8 + 0.01 * int(cls)
        for seed in range(3):
            values["cap", cls, seed] = values["no_adaptation", cls, 0] + 0.02 + 0.002 * rng.normal()
    cells = pd.DataFrame({
        "entry": ["CAP", "CAP (no adaptation)"], "dataset": ["cifar10", "cifar10"],
        "kind": ["computed", "computed"], "variant": ["cap", "no_adaptation"],
    })  # fmt: skip
    specs = paper_claim_specs(paper, {"t1": "table1"})
    claims = judge_claims(runs_frame(values), {"t1": cells}, specs, paper["scale"])
    rows = claims[claims["claim"].str.startswith("CAP > CAP without")].set_index("dataset")
    cifar = rows.loc["cifar10"]
    assert cifar["verdict"] == HOLDS and cifar["n_classes"] == 5 and cifar["n_seeds"] == "3 vs 1"
    assert cifar["difference"] == pytest.approx(2.0, abs=0.3)
    assert cifar["scale"] == "ours 200 / 2,000 / 40; paper 5,000 / 10,000 / 790"
    assert rows.loc["cifar100", "verdict"] == NOT_RUN
    assert paper_claim_specs(paper, {"t1": None}) == []  # no table of ours is the paper's
    partial = paper_claim_specs(paper, {"t1": "table1"})  # only Table 1's claims
    assert {spec.tables for spec in partial} == {("t1",)} and len(partial) < len(paper["claims"])


def test_a_configs_own_claim_may_compare_gaps_across_bank_sizes():
    values = {}
    for cls in map(str, range(4)):
        for n, gap in ((200, -5.0), (5000, -1.0 + 0.1 * int(cls))):
            values[f"na{n}", cls, 0] = 0.8
            values[f"cap{n}", cls, 0] = 0.8 + gap / 100
    runs = runs_frame(values)
    runs["n_train"] = runs["variant"].str.removeprefix("na").str.removeprefix("cap").astype(int)
    cells = pd.DataFrame({
        "entry": ["CAP 200", "NA 200", "CAP 5000", "NA 5000"], "dataset": ["cifar10"] * 4,
        "kind": ["computed"] * 4, "variant": ["cap200", "na200", "cap5000", "na5000"],
    })  # fmt: skip
    claim = ClaimSpec(
        "the gap CAP − no adaptation shrinks from N = 200 to 5,000", ("sizes",),
        higher=("CAP 5000", "NA 5000"), lower=("CAP 200", "NA 200"), datasets=("cifar10",),
    )  # fmt: skip
    (row,) = judge_claims(runs, {"sizes": cells}, [claim]).itertuples()
    assert row.verdict == HOLDS and row.difference == pytest.approx(4.15)
    assert row.scale.startswith("ours 200–5,000 / 2,000")


def test_a_claim_on_a_table_with_a_class_subset_is_judged_on_those_classes():
    values = {}
    for cls in map(str, range(10)):
        values["na", cls, 0] = 0.8
        values["cap", cls, 0] = 0.8 + (0.02 + 0.001 * int(cls) if int(cls) < 4 else -0.1)
    cells = pd.DataFrame({
        "entry": ["CAP", "NA"], "dataset": ["cifar10"] * 2, "kind": ["computed"] * 2,
        "variant": ["cap", "na"],
    })  # fmt: skip
    specs = [ClaimSpec("CAP > NA", ("sizes",), ("CAP",), ("NA",), ("cifar10",))]
    (every,) = judge_claims(runs_frame(values), {"sizes": cells}, specs).itertuples()
    assert every.n_classes == 10 and every.verdict == FAILS
    subset = {"sizes": {"cifar10": [0, 1, 2, 3]}}
    (kept,) = judge_claims(
        runs_frame(values), {"sizes": cells}, specs, table_classes=subset
    ).itertuples()
    assert kept.n_classes == 4 and kept.verdict == HOLDS
    assert kept.difference == pytest.approx(2.15)  # above on classes 0-3 only


def test_a_claim_may_set_one_dataset_against_another_class_by_class():
    """The preprocessing effect: the same rows on the same classes, embedded two ways."""
    values = {}
    for cls in map(str, range(5)):
        values["dn2", cls, 0] = 0.75 + 0.01 * int(cls)
        values["cap", cls, 0] = 0.80
    paper_runs = runs_frame(values, "cifar10")
    bilinear = runs_frame(
        {
            (v, c, s): a + (0.03 + 0.002 * int(c) if v == "dn2" else 0.0)
            for (v, c, s), a in values.items()
        },
        "cifar10_tv",
    )
    bilinear["n_test"] = 1000  # each side's scale is read on its own dataset
    runs = pd.concat([paper_runs, bilinear], ignore_index=True)
    cells = pd.DataFrame({
        "entry": ["DN2", "CAP"] * 2, "dataset": ["cifar10"] * 2 + ["cifar10_tv"] * 2,
        "kind": ["computed"] * 4, "variant": ["dn2", "cap"] * 2,
    })  # fmt: skip
    claims = [
        ClaimSpec("bilinear helps DN2", ("t",), ("DN2",), ("DN2",), ("cifar10_tv",), ("cifar10",)),
        ClaimSpec(
            "the gap depends on it", ("t",), ("CAP", "DN2"), ("CAP", "DN2"), ("cifar10",),
            ("cifar10_tv",),
        ),
    ]  # fmt: skip
    effect, gap = judge_claims(runs, {"t": cells}, claims).itertuples()
    assert effect.dataset == "cifar10_tv vs cifar10" and effect.verdict == HOLDS
    assert effect.difference == pytest.approx(3.4) and effect.n_classes == 5
    assert effect.n_seeds == "1 vs 1" and effect.scale.startswith("ours 200 / 1,000–2,000 / 40")
    assert gap.verdict == HOLDS and gap.difference == pytest.approx(3.4)


def test_a_claim_between_untrained_methods_has_no_training_steps():
    values = {("dn2", str(c), 0): 0.9 + 0.01 * c for c in range(3)}
    values |= {("no_adaptation", str(c), 0): 0.85 for c in range(3)}
    runs = runs_frame(values).drop(columns=["epochs", "batch_size"])  # no trained variant ran
    cells = pd.DataFrame({
        "entry": ["DN2", "NA"], "dataset": ["cifar10"] * 2, "kind": ["computed"] * 2,
        "variant": ["dn2", "no_adaptation"],
    })  # fmt: skip
    claim = ClaimSpec("DN2 > NA", ("t",), ("DN2",), ("NA",), ("cifar10",))
    (row,) = judge_claims(runs, {"t": cells}, [claim]).itertuples()
    assert row.verdict == HOLDS and row.scale == "ours 200 / 2,000 / –; paper –"


def test_a_pooled_claim_averages_each_class_over_datasets_and_resamples_classes():
    """The bootstrap against a direct one: per class the mean over datasets, classes drawn
    with replacement (the same draws for every dataset), the mean's percentiles."""
    differences = pd.DataFrame(
        {"a": [1.0, 2.0, 0.5, 3.0, 1.5, 2.5], "b": [0.0, 1.0, 0.5, 1.0, -0.5, 0.5]},
        index=list("012345"),
    )
    test = pooled_test(differences, resamples=2000, seed=7)
    per_class = differences.mean(axis=1).to_numpy()
    draws = np.random.default_rng(7).integers(6, size=(2000, 6))
    direct = [per_class[row].mean() for row in draws]
    assert test.mean == pytest.approx(per_class.mean())
    assert (test.ci_low, test.ci_high) == pytest.approx(np.percentile(direct, [2.5, 97.5]))
    assert test.verdict == HOLDS and test.n == 6
    assert pooled_test(-differences).verdict == FAILS
    assert pooled_test(differences - per_class.mean()).verdict == INCONCLUSIVE


def test_a_pooled_claim_gets_a_row_over_its_datasets_when_every_one_ran():
    values = {}
    for dataset, gain in (("d1", 0.02), ("d2", 0.01)):
        for cls in map(str, range(4)):
            values[dataset, "na", cls] = 0.8 + 0.01 * int(cls)
            values[dataset, "cap", cls] = 0.8 + 0.01 * int(cls) + gain + 0.001 * int(cls)
    runs = pd.concat(
        [
            runs_frame({(v, c, 0): a for (d, v, c), a in values.items() if d == name}, name)
            for name in ("d1", "d2")
        ],
        ignore_index=True,
    )
    cells = pd.DataFrame({
        "entry": ["CAP", "NA"] * 2, "dataset": ["d1", "d1", "d2", "d2"],
        "kind": ["computed"] * 4, "variant": ["cap", "na"] * 2,
    })  # fmt: skip
    spec = ClaimSpec("CAP above NA", ("t",), ("CAP",), ("NA",), ("d1", "d2"), pooled=True)
    rows = judge_claims(runs, {"t": cells}, [spec]).set_index("dataset")
    pooled = rows.loc["pooled over 2 datasets"]
    assert pooled["verdict"] == HOLDS and pooled["n_classes"] == 4
    assert pooled["difference"] == pytest.approx(
        (rows.loc["d1", "difference"] + rows.loc["d2", "difference"]) / 2
    )
    lonely = judge_claims(runs[runs["dataset"] == "d1"], {"t": cells}, [spec])
    assert lonely.set_index("dataset").loc["pooled over 2 datasets", "verdict"] == NOT_RUN


def test_the_claims_figure_draws_each_claim_with_its_interval(tmp_path):
    claims = pd.DataFrame({
        "claim": ["a above b"] * 3 + ["c above d"] * 2 + ["the paper's"],
        "dataset": ["d1", "d2", "pooled over 2 datasets", "d1", "d2", "d1"],
        "difference": [1.0, -0.5, 0.25, 2.0, np.nan, 3.0],
        "ci_low": [0.2, -1.5, -0.4, 1.0, np.nan, 2.0],
        "ci_high": [1.8, 0.5, 0.9, 3.0, np.nan, 4.0],
        "verdict": [HOLDS, INCONCLUSIVE, INCONCLUSIVE, HOLDS, NOT_RUN, HOLDS],
    })  # fmt: skip
    written = plot_claims(claims, ["a above b", "c above d"], tmp_path / "claims")
    assert sorted(path.suffix for path in written) == [".pdf", ".png"]
    assert all(path.stat().st_size > 0 for path in written)
    with pytest.raises(DataError, match="none of the config's claims"):
        plot_claims(claims, ["nothing of the kind"], tmp_path / "none")
