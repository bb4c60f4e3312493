#!/usr/bin/env bash
# Refresh docs/backbones-report/ (report, tables with the runs table, claims, leaderboard
# and the concordance across backbones with its figure) from a finished run of the
# backbones config; its README (the findings in words) is written by hand from them. The
# one command, from a clean clone with the shared assets and the extras:
#   snakemake --cores 2 all --configfile config/backbones.yaml && docs/update-backbones-report.sh
set -euo pipefail
test -f results/tables/concordance.md && grep -q "backbones" results/report/reproduction.md \
    || { echo "run the backbones config first (see the header)" >&2; exit 1; }
mkdir -p docs/backbones-report/tables
rm -rf docs/backbones-report/report docs/backbones-report/tables/*
cp -r results/report docs/backbones-report/
cp results/tables/backbones* results/tables/leaderboard.* results/tables/claims.csv \
    results/tables/concordance* results/tables/runs.csv docs/backbones-report/tables/
