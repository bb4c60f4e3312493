#!/usr/bin/env bash
# Refresh docs/benchmark-report/ (report, tables with the runs table, claims and
# leaderboard) from a finished run of the benchmark; its README (the findings in words)
# is written by hand from them. The one command, from a clean clone with the shared assets:
#   snakemake --cores 2 all --configfile config/benchmark.yaml && docs/update-benchmark-report.sh
# `.ci/run` re-runs a slice of it (every method but CAP on CIFAR-10 under the paper's
# preprocessing) and checks it run by run against docs/benchmark-report/tables (`cap verify`).
set -euo pipefail
test -f results/tables/leaderboard.md && grep -q "benchmark" results/report/reproduction.md \
    || { echo "run the benchmark first (see the header)" >&2; exit 1; }
mkdir -p docs/benchmark-report/tables
rm -rf docs/benchmark-report/report docs/benchmark-report/tables/*
cp -r results/report docs/benchmark-report/
cp results/tables/benchmark* results/tables/leaderboard.* results/tables/claims.csv \
    results/tables/runs.csv docs/benchmark-report/tables/
