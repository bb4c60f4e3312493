"""Snakemake script: the localization figure (images, ground-truth contours, each
method's anomaly map)."""

import logging
from pathlib import Path

from cap.benchmark.embeddings import load_embeddings
from cap.benchmark.records import read_maps
from cap.reporting.figure_examples import load_images
from cap.reporting.localization_figure import localization_examples, plot_localization

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)

params = snakemake.params
examples = localization_examples(
    read_maps(snakemake.input.maps),
    params.columns,
    load_embeddings(snakemake.input.test_emb, feature_maps=False),
    load_images(params.dataset, "test"),
    n_per_type=params.figure["n_per_type"],
)
plot_localization(
    examples, Path(snakemake.output.png).with_suffix(""), title=params.figure["title"]
)
