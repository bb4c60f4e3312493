#!/usr/bin/env bash
# Refresh docs/adaptation-report/ (report, tables with the runs table, claims with their
# figure, leaderboard) from a finished run of the adaptation config; its README (the
# findings in words) is written by hand from them. The one command, from a clean clone with
# the shared assets and the extras:
#   snakemake --cores 2 all --configfile config/adaptation.yaml && docs/update-adaptation-report.sh
set -euo pipefail
test -f results/tables/adaptation.md && test -f results/tables/claims.png \
    || { echo "run the adaptation config first (see the header)" >&2; exit 1; }
mkdir -p docs/adaptation-report/tables
rm -rf docs/adaptation-report/report docs/adaptation-report/tables/*
cp -r results/report docs/adaptation-report/
cp results/tables/adaptation* results/tables/seeds* results/tables/leaderboard.* \
    results/tables/claims.* results/tables/runs.csv docs/adaptation-report/tables/
