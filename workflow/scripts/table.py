"""Snakemake script: one paper table (CSV, Markdown, LaTeX, per-class CSV) from AUROC records.

``write_table`` names its files from the CSV's prefix: {prefix}.md, .tex, _per_class.csv.
"""

from pathlib import Path

from cap.evaluation.records import summarize_records
from cap.reporting.paper import load_paper_results
from cap.reporting.tables import build_table, write_table
from cap.utils.logs import log_to

log_to(snakemake.log[0])

table = build_table(
    summarize_records(snakemake.input.records, snakemake.params.labels),
    snakemake.params.spec,
    load_paper_results(snakemake.input.paper),
)
write_table(table, Path(snakemake.output.csv).with_suffix(""))
