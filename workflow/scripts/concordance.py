"""Snakemake script: how alike the backbones rank the methods of the config's concordance
table (results/tables/concordance*)."""

from pathlib import Path

from cap.evaluation.records import read_runs_table
from cap.reporting.concordance import method_means, rank_concordance, write_concordance
from cap.utils.logs import log_to

log_to(snakemake.log[0])

spec = snakemake.params.spec
metric = spec.get("metric", "auroc")
runs = read_runs_table(snakemake.input.runs)
pairs, overall = rank_concordance(runs, spec, metric)
write_concordance(
    method_means(runs, spec, metric),
    pairs,
    overall,
    Path(snakemake.output.md).with_suffix(""),
    title=f"Concordance across backbones: {spec['title']}",
)
