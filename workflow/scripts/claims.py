"""Snakemake script: every claim judged over classes (results/tables/claims.csv)."""

from pathlib import Path

from cap.evaluation.jobs import ClaimsJob, from_dict
from cap.evaluation.records import read_runs_table
from cap.reporting.claims import judge_report_claims, write_claims
from cap.reporting.paper import load_paper_results
from cap.reporting.tables import read_table
from cap.utils.logs import log_to

log_to(snakemake.log[0])

inputs = snakemake.input
write_claims(
    snakemake.output[0],
    judge_report_claims(
        read_runs_table(inputs.runs),
        {Path(path).stem: read_table(path) for path in inputs.tables},
        load_paper_results(inputs.paper),
        from_dict(ClaimsJob, snakemake.params.job, where="params.job"),
    ),
)
