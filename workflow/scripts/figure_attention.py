"""Snakemake script: Figures 2/7, nearest normal images and their attention weights."""

import logging
from pathlib import Path

from cap.benchmark.jobs import TaskSpec, from_dict
from cap.reporting.figure_examples import (
    RUN_INPUTS,
    attention_examples,
    load_images,
    load_trained_run,
)
from cap.reporting.figures import plot_attention

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)

inputs, params = snakemake.input, snakemake.params
run = load_trained_run(
    **{key: getattr(inputs, key) for key in RUN_INPUTS},
    task=from_dict(TaskSpec, params.task, where="params.task"),
)
examples = attention_examples(
    run.detector,
    run.task,
    run.neighbors,
    load_images(params.dataset, "train"),
    load_images(params.dataset, "test"),
    n_examples=params.figure["n_examples"],
    n_neighbors=params.figure["n_neighbors"],
)
plot_attention(examples, Path(snakemake.output.png).with_suffix(""))
