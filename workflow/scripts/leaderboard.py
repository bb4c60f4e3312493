"""Snakemake script: the leaderboard (results/tables/leaderboard.csv and .md)."""

from cap.evaluation.records import read_runs_table
from cap.reporting.leaderboard import build_leaderboard, write_leaderboard
from cap.utils.logs import log_to

log_to(snakemake.log[0])

spec = snakemake.params.spec
write_leaderboard(
    build_leaderboard(read_runs_table(snakemake.input.runs), spec),
    snakemake.output.csv,
    snakemake.output.md,
    title=f"Leaderboard: {spec['title']}",
)
