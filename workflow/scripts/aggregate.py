"""Snakemake script: every run in one long-form table (results/tables/runs.csv)."""

import logging

from cap.benchmark.records import summarize_records, write_runs_table

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)

write_runs_table(
    snakemake.output[0], summarize_records(snakemake.input.records, snakemake.params.labels)
)
