"""The adaptation report's numbers that no table of the workflow holds, from its runs table.

- per backbone: no adaptation's mean AUROC (its quality) and each head's mean gap to it, and
  Spearman's ρ between the two over the five backbones, with the exact permutation p-value
  (all 5! orderings: with five points nothing finer is honest);
- the seed spread (std over 3 seeds, per class, MobileNetV2) beside the class spread (std
  over the 10 classes of the same gap);
- every run that the study report (``docs/study-report``) or the backbones report
  (``docs/backbones-report``) made at the same settings, and the largest |Δ AUROC|.

    python docs/adaptation-report/gaps_by_backbone.py   (from the repository root)
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

DOCS = Path(__file__).resolve().parent.parent
HEADS = {"Xavier": "cap_n1000", "identity": "identity_n1000"}
BASELINE = "na_n1000"
SEEDS_DATASET, SEEDS_SOURCE = "cifar10_mnv2_seeds", "cifar10_mnv2"
#: The settings that make two runs the same run (a column a runs table lacks: unset there).
RUN_KEY = ["backbone", "weights", "cls", "method", "n_train", "seed", "k", "normalize"]
RUN_KEY += ["init", "lam", "epochs", "lr", "lr_decay", "batch_size", "head", "attention"]


def read_runs(report: str) -> pd.DataFrame:
    runs = pd.read_csv(DOCS / report / "tables" / "runs.csv")
    runs = runs.reindex(columns=sorted(set(runs.columns) | set(RUN_KEY)))
    runs[RUN_KEY] = runs[RUN_KEY].map(canonical)
    return runs


def canonical(value: object) -> str:
    """A setting as text that compares equal across tables (32 and 32.0; unset is '')."""
    if pd.isna(value):
        return ""
    try:
        return format(float(value), "g")
    except ValueError:
        return str(value)


def gaps(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Each head's AUROC minus no adaptation's, per class (percentage points)."""
    one = runs[(runs["dataset"] == dataset) & (runs["seed"] == "0")]
    auroc = one.pivot(index="cls", columns="variant", values="auroc") * 100
    return pd.DataFrame({head: auroc[v] - auroc[BASELINE] for head, v in HEADS.items()}).assign(
        baseline=auroc[BASELINE]
    )


def exact_spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """ρ and the two-sided p-value over every ordering of ``y``."""
    rho = spearmanr(x, y).statistic
    null = [spearmanr(x, order).statistic for order in itertools.permutations(y)]
    return rho, float(np.mean(np.abs(null) >= abs(rho) - 1e-12))


def by_backbone(runs: pd.DataFrame) -> None:
    datasets = [d for d in runs["dataset"].unique() if d != SEEDS_DATASET and "n5000" not in d]
    means = pd.DataFrame({d: gaps(runs, d).mean() for d in datasets}).T
    print("per backbone (mean over 10 classes, AUROC points):")
    print(means.round(2).to_string())
    for head in HEADS:
        rho, p = exact_spearman(means["baseline"].to_numpy(), means[head].to_numpy())
        label = f"Spearman ρ(no adaptation's AUROC, {head} − no adaptation)"
        print(f"{label} = {rho:+.2f}, exact p = {p:.3f}")


def seed_spread(runs: pd.DataFrame) -> None:
    seeds = runs[runs["dataset"] == SEEDS_DATASET]
    classes = gaps(runs, SEEDS_SOURCE)
    for head, variant in HEADS.items():
        auroc = seeds[seeds["variant"] == variant].groupby("cls")["auroc"].std() * 100
        print(
            f"{head}: std over 3 seeds per class {', '.join(f'{s:.2f}' for s in auroc)} "
            f"(mean {auroc.mean():.2f}); std of its gap over the 10 classes "
            f"{classes[head].std():.2f}"
        )


def same_runs(runs: pd.DataFrame, report: str) -> None:
    other = read_runs(report)
    pairs = runs.merge(other, on=RUN_KEY, suffixes=("", "_other"))
    if pairs.empty:
        print(f"{report}: no run at the same settings")
        return
    delta = (pairs["auroc"] - pairs["auroc_other"]).abs()
    print(f"{report}: {len(pairs)} runs at the same settings, largest |Δ AUROC| {delta.max():.2g}")


def main() -> None:
    runs = read_runs("adaptation-report")
    by_backbone(runs)
    seed_spread(runs)
    for report in ("study-report", "backbones-report"):
        same_runs(runs, report)


if __name__ == "__main__":
    main()
