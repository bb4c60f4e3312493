"""Snakemake script: bootstrap intervals over the test images of each category of the
datasets with defect masks (results/tables/bootstrap*.csv and bootstrap.md)."""

from cap.reporting.category_intervals import BatchFiles, category_tables, write_category_tables
from cap.utils.logs import log_to

log_to(snakemake.log[0])

batches = [
    BatchFiles(records, scores, maps, test)
    for records, scores, maps, test in zip(
        snakemake.input.records,
        snakemake.input.scores,
        snakemake.input.maps,
        snakemake.input.test,
        strict=True,
    )
]
intervals, differences = category_tables(
    batches, snakemake.params.labels, resamples=snakemake.params.resamples
)
write_category_tables(
    intervals,
    differences,
    intervals_csv=snakemake.output.intervals,
    differences_csv=snakemake.output.differences,
    md=snakemake.output.md,
)
