"""Snakemake script: every run in one long-form table (results/tables/runs.csv)."""

from cap.evaluation.records import summarize_records, write_runs_table
from cap.utils.logs import log_to

log_to(snakemake.log[0])

write_runs_table(
    snakemake.output[0], summarize_records(snakemake.input.records, snakemake.params.labels)
)
