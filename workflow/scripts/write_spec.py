"""Snakemake script: one job's spec file, with its sha256 (cap.evaluation.jobs)."""

from cap.evaluation.jobs import write_spec_data

write_spec_data(snakemake.output[0], snakemake.params.job)
