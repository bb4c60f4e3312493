"""Snakemake script: the localization figure (images, ground-truth contours, each
method's anomaly map)."""

from pathlib import Path

from cap.evaluation.embeddings import load_embeddings
from cap.evaluation.records import checked_maps, read_maps, read_runs
from cap.reporting.figure_examples import load_images
from cap.reporting.localization_figure import localization_examples, plot_localization
from cap.utils.logs import log_to

log_to(snakemake.log[0])

params, inputs = snakemake.params, snakemake.input
test = load_embeddings(inputs.test_emb, feature_maps=False)
maps = checked_maps(read_maps(inputs.maps), read_runs([inputs.records]), test.masks, inputs.maps)
examples = localization_examples(
    maps,
    params.columns,
    test,
    load_images(params.dataset, "test"),
    n_per_type=params.figure["n_per_type"],
)
plot_localization(
    examples, Path(snakemake.output.png).with_suffix(""), title=params.figure["title"]
)
