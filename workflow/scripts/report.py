"""Snakemake script: the reproduction report (results/report/reproduction.md)."""

import logging
from pathlib import Path

from cap.benchmark.evaluation import read_runs_table
from cap.reporting.claims import read_claims
from cap.reporting.paper import load_paper_results
from cap.reporting.report import backbone_weights, write_report

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)

inputs, params = snakemake.input, snakemake.params
write_report(
    snakemake.output.md,
    summary=read_runs_table(inputs.runs),
    tables={Path(path).stem: Path(path) for path in inputs.tables},
    paper=load_paper_results(inputs.paper),
    backbones_used=params.backbones_used,
    backbone_models=params.backbone_models,
    claims=read_claims(inputs.claims),
    tolerance=params.tolerance,
    figures=[Path(path) for path in inputs.figures],
    benchmarks=[path for path in params.benchmarks if Path(path).is_file()],
    config=params.config,
    environment=backbone_weights(list(inputs.embeddings)),
    repository=Path(snakemake.scriptdir).parents[1],
)
