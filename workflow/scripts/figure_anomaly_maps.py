"""Snakemake script: Figures 4/5, anomaly maps over test images (and MVTec masks)."""

from pathlib import Path

from cap.reporting.figure_examples import (
    anomaly_map_examples,
    load_figure_run,
    load_images,
)
from cap.reporting.figures import plot_anomaly_maps
from cap.utils.logs import log_to

log_to(snakemake.log[0])

inputs, params = snakemake.input, snakemake.params
run = load_figure_run(inputs, params)
examples = anomaly_map_examples(
    run.detector,
    run.task,
    run.neighbors,
    run.test_embeddings,
    load_images(params.dataset, "test"),
    n_examples=params.figure["n_examples"],
)
plot_anomaly_maps(examples, Path(snakemake.output.png).with_suffix(""))
