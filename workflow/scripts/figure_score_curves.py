"""Snakemake script: Figures 3/6, mean test anomaly scores over training, one pair per λ."""

from pathlib import Path

from cap.evaluation.records import read_runs
from cap.reporting.figures import plot_score_curves
from cap.utils.logs import log_to

log_to(snakemake.log[0])

runs = {(run["setting"], run["seed"]): run for run in read_runs(snakemake.input.records)}
plot_score_curves(
    {
        curve["label"]: [runs[curve["settings"][0], seed]["history"] for seed in curve["seeds"]]
        for curve in snakemake.params.curves
    },
    Path(snakemake.output.png).with_suffix(""),
    title=snakemake.params.figure.get("title", ""),
)
