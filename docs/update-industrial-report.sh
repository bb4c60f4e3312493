#!/usr/bin/env bash
# Refresh docs/industrial-report/ (report, tables with the runs table and the bootstrap
# intervals, localization figures) from a finished run of the industrial config; its README
# (the findings in words, the published results beside ours) is written by hand from them.
# The one command, from a clean clone with the shared assets (or MVTec 3D-AD's tire):
#   snakemake --cores 2 all --configfile config/industrial.yaml && docs/update-industrial-report.sh
# `.ci/run` re-runs its EfficientNet-Lite0 half and checks it run by run against
# docs/industrial-report/tables (`cap verify --subset`: image AUROC, pixel AUROC and AUPRO).
set -euo pipefail
test -f results/tables/bootstrap.md && grep -q "industrial" results/report/reproduction.md \
    || { echo "run the industrial config first (see the header)" >&2; exit 1; }
mkdir -p docs/industrial-report/tables
rm -rf docs/industrial-report/report docs/industrial-report/tables/* docs/industrial-report/figures/*
cp -r results/report docs/industrial-report/
cp results/tables/industrial* results/tables/bootstrap* results/tables/runs.csv \
    docs/industrial-report/tables/
(cd results && find figures -name '*.png' -exec cp --parents {} ../docs/industrial-report/ \;)
