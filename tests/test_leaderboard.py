"""The leaderboard: intervals over classes, ranks tied where the classes cannot tell
methods apart, and the cost per run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cap.reporting.leaderboard import build_leaderboard, leaderboard_markdown, write_leaderboard

SPEC = {
    "title": "methods",
    "datasets": ["cifar10", "cifar10_tv"],
    "entries": [
        {"label": "CAP", "variants": {"cifar10": "cap", "cifar10_tv": "cap"}},
        {"label": "DN2", "variants": {"cifar10": "dn2", "cifar10_tv": "dn2"}},
        {"label": "no adaptation", "variants": {"cifar10": "na", "cifar10_tv": "na"}},
        {"label": "ECOD", "variants": {"cifar10": "ecod", "cifar10_tv": None}},
    ],
}


def runs_frame() -> pd.DataFrame:
    """CAP (2 seeds) and NA close together and both well above DN2; ECOD on one dataset."""
    rng = np.random.default_rng(0)
    rows = []
    for dataset, preprocessing in (("cifar10", "paper"), ("cifar10_tv", "torchvision")):
        for cls in range(6):
            base = 0.80 + 0.02 * cls
            means = {"cap": base + 0.004, "na": base, "dn2": base - 0.08, "ecod": base - 0.2}
            for variant, mean in means.items():
                if variant == "ecod" and dataset == "cifar10_tv":
                    continue
                for seed in range(2 if variant == "cap" else 1):
                    rows.append({
                        "dataset": dataset, "preprocessing": preprocessing, "cls": str(cls),
                        "variant": variant, "seed": seed,
                        "auroc": mean + 0.01 * rng.normal() + 0.002 * seed,
                        "fit_s": 10.0 if variant == "cap" else 0.5, "score_s": 1.0,
                    })  # fmt: skip
    return pd.DataFrame(rows)


def test_ranks_tie_where_the_paired_interval_contains_zero():
    board = build_leaderboard(runs_frame(), SPEC)
    cifar = board[board["dataset"] == "cifar10"].set_index("entry")
    assert cifar.loc["CAP", "rank"] == cifar.loc["no adaptation", "rank"] == 1  # not told apart
    assert cifar.loc["DN2", "rank"] == 3 and cifar.loc["ECOD", "rank"] == 4
    assert list(board["entry"][board["dataset"] == "cifar10"])[-1] == "ECOD"  # best first
    tv = board[board["dataset"] == "cifar10_tv"]
    assert set(tv["entry"]) == {"CAP", "DN2", "no adaptation"} and set(tv["preprocessing"]) == {
        "torchvision"
    }
    assert cifar.loc["CAP", "n_seeds"] == 2 and cifar.loc["no adaptation", "n_classes"] == 6
    assert cifar.loc["CAP", "fit_s"] == 10.0 and cifar.loc["DN2", "score_s"] == 1.0


def test_the_interval_is_students_over_seed_averaged_classes():
    runs = runs_frame()
    board = build_leaderboard(runs, SPEC).set_index(["dataset", "entry"])
    cap = runs[(runs["dataset"] == "cifar10") & (runs["variant"] == "cap")]
    per_class = cap.groupby("cls")["auroc"].mean().to_numpy() * 100
    low, high = stats.t.interval(0.95, 5, loc=per_class.mean(), scale=stats.sem(per_class))
    row = board.loc["cifar10", "CAP"]
    assert row["auroc_pct"] == pytest.approx(per_class.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))


def test_the_markdown_says_how_to_read_it_and_the_files_round_trip(tmp_path):
    board = build_leaderboard(runs_frame(), SPEC)
    text = leaderboard_markdown(board, "Leaderboard: methods")
    assert "### cifar10_tv (preprocessing: torchvision)" in text
    assert "share a rank" in text and "| 1      | CAP" in text
    write_leaderboard(board, tmp_path / "l.csv", tmp_path / "l.md", "Leaderboard: methods")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "l.csv"), board)
    assert (tmp_path / "l.md").read_text().strip() == text


def test_aupr_and_fpr95_get_their_mean_and_interval_where_recorded():
    runs = runs_frame()
    assert build_leaderboard(runs, SPEC)["aupr_pct"].isna().all()  # an older runs table
    runs = runs.assign(aupr=runs["auroc"] - 0.1, fpr95=1.0 - runs["auroc"])
    board = build_leaderboard(runs, SPEC).set_index(["dataset", "entry"])
    na = runs[(runs["dataset"] == "cifar10") & (runs["variant"] == "na")]
    fpr = na.groupby("cls")["fpr95"].mean().to_numpy() * 100
    low, high = stats.t.interval(0.95, 5, loc=fpr.mean(), scale=stats.sem(fpr))
    row = board.loc["cifar10", "no adaptation"]
    assert row["fpr95_pct"] == pytest.approx(fpr.mean())
    assert (row["fpr95_ci_low"], row["fpr95_ci_high"]) == pytest.approx((low, high))
    assert row["aupr_pct"] == pytest.approx(row["auroc_pct"] - 10)
    text = leaderboard_markdown(build_leaderboard(runs, SPEC), "methods")
    assert "| AUPR" in text and "FPR@95%TPR" in text
