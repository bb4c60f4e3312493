"""Snakemake script: the config's own claims with their intervals (results/tables/claims.png,
.pdf)."""

from pathlib import Path

from cap.reporting.claims import read_claims
from cap.reporting.claims_figure import plot_claims
from cap.utils.logs import log_to

log_to(snakemake.log[0])

plot_claims(
    read_claims(snakemake.input.claims),
    snakemake.params.claims,
    Path(snakemake.output.png).with_suffix(""),
)
