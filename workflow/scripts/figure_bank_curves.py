"""Snakemake script: AUROC against the bank size, per class and on average, per method."""

from pathlib import Path

from cap.evaluation.records import summarize_records
from cap.reporting.figures import plot_bank_curves
from cap.utils.logs import log_to

log_to(snakemake.log[0])

figure = snakemake.params.figure
plot_bank_curves(
    summarize_records(snakemake.input.records),
    {curve["label"]: curve["settings"] for curve in snakemake.params.curves},
    Path(snakemake.output.png).with_suffix(""),
    title=figure.get("title", ""),
)
