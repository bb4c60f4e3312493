#!/usr/bin/env bash
# Refresh docs/demo-report/ from a finished demo run (report, tables, PNG figures), keeping
# the report's relative links. Run from the repository root after:
#   snakemake --cores 2 all --configfile config/demo.yaml
set -euo pipefail
test -f results/report/reproduction.md || { echo "run the demo first (see the header)" >&2; exit 1; }
rm -rf docs/demo-report
mkdir -p docs/demo-report
cp -r results/report results/tables docs/demo-report/
(cd results && find figures -name '*.png' -exec cp --parents {} ../docs/demo-report/ \;)
