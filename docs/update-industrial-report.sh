#!/usr/bin/env bash
# Refresh docs/industrial-report/ (report, tables with the runs table and the bootstrap
# intervals, localization figures) from a finished run of the industrial config; its README
# (the findings in words, the published results beside ours) is written by hand from them.
# The one command, from a clean clone with the shared assets (or MVTec 3D-AD's tire):
#   snakemake --cores 2 all --configfile config/industrial.yaml && docs/update-industrial-report.sh
# `.ci/run` re-runs it whole and checks it run by run against docs/industrial-report/tables
# (`cap verify`: image AUROC, pixel AUROC and AUPRO of every run).
set -euo pipefail
test -f results/tables/bootstrap.md && grep -q "industrial" results/report/reproduction.md \
    || { echo "run the industrial config first (see the header)" >&2; exit 1; }
mkdir -p docs/industrial-report/tables
rm -rf docs/industrial-report/report docs/industrial-report/tables/* docs/industrial-report/figures/*
cp -r results/report docs/industrial-report/
cp results/tables/industrial* results/tables/bootstrap* results/tables/runs.csv \
    docs/industrial-report/tables/
(cd results && find figures -name '*.png' -exec cp --parents {} ../docs/industrial-report/ \;)
