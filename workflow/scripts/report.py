"""Snakemake script: the reproduction report (results/report/reproduction.md)."""

from pathlib import Path

from cap.evaluation.jobs import ReportJob, from_dict
from cap.evaluation.records import read_runs_table
from cap.reporting.claims import read_claims
from cap.reporting.paper import load_paper_results
from cap.reporting.provenance import backbone_weights
from cap.reporting.report import ReportInputs, write_report
from cap.utils.logs import log_to
from cap.workflow import registry

log_to(snakemake.log[0])

inputs, params = snakemake.input, snakemake.params
job = from_dict(ReportJob, params.job, where="params.job")
# this config's jobs, found under results/ (a missing one is no input: nothing reruns)
timings = [
    (rule, path)
    for rule, wildcards, path in registry.find_job_files("timings")
    if rule != "report" and job.owns(wildcards)
]
write_report(
    snakemake.output.md,
    ReportInputs(
        runs=read_runs_table(inputs.runs),
        tables={Path(path).stem: path for path in inputs.tables},
        claims=read_claims(inputs.claims),
        paper=load_paper_results(inputs.paper),
        backbones={dataset: tuple(names) for dataset, names in job.backbones.items()},
        config=job.config,
        tolerance=job.tolerance,
        sections={name: getattr(inputs, name) for name in params.sections},
        figures=list(inputs.figures),
        timings=timings,
        environment=backbone_weights(list(inputs.embeddings)),
        repository=Path(snakemake.scriptdir).parents[1],
    ),
)
