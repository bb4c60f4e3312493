"""Snakemake script: one figure of any kind (cap.workflow.figures), PNG and PDF."""

from pathlib import Path

from cap.utils.logs import log_to
from cap.workflow.figures import FIGURE_KINDS

log_to(snakemake.log[0])

FIGURE_KINDS[snakemake.params.kind].drawing()(
    dict(snakemake.input.items()),
    snakemake.params.spec,
    Path(snakemake.output.png).with_suffix(""),
)
