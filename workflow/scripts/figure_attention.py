"""Snakemake script: Figures 2/7, nearest normal images and their attention weights."""

from pathlib import Path

from cap.reporting.figure_examples import (
    attention_examples,
    load_figure_run,
    load_images,
)
from cap.reporting.figures import plot_attention
from cap.utils.logs import log_to

log_to(snakemake.log[0])

inputs, params = snakemake.input, snakemake.params
run = load_figure_run(inputs, params)
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
