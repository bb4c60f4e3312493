"""Snakemake script: Figures 4/5, anomaly maps over test images (and MVTec masks)."""

import logging
from pathlib import Path

from cap.benchmark.jobs import TaskSpec, from_dict
from cap.reporting.figure_examples import (
    RUN_INPUTS,
    anomaly_map_examples,
    load_images,
    load_trained_run,
)
from cap.reporting.figures import plot_anomaly_maps

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)

inputs, params = snakemake.input, snakemake.params
run = load_trained_run(
    **{key: getattr(inputs, key) for key in RUN_INPUTS},
    task=from_dict(TaskSpec, params.task, where="params.task"),
)
examples = anomaly_map_examples(
    run.detector,
    run.task,
    run.neighbors,
    run.test_embeddings,
    load_images(params.dataset, "test"),
    n_examples=params.figure["n_examples"],
)
plot_anomaly_maps(examples, Path(snakemake.output.png).with_suffix(""))
