"""Snakemake script: the leaderboard (results/tables/leaderboard.csv and .md)."""

import logging

from cap.benchmark.records import read_runs_table
from cap.reporting.leaderboard import build_leaderboard, write_leaderboard

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)

spec = snakemake.params.spec
write_leaderboard(
    build_leaderboard(read_runs_table(snakemake.input.runs), spec),
    snakemake.output.csv,
    snakemake.output.md,
    title=f"Leaderboard: {spec['title']}",
)
