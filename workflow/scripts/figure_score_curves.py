"""Snakemake script: Figures 3/6, mean test anomaly scores over training, one pair per λ."""

import json
import logging
from pathlib import Path

from cap.reporting.figures import plot_score_curves

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)

histories = [json.loads(Path(path).read_text()) for path in snakemake.input.histories]
plot_score_curves(
    dict(zip(snakemake.params.labels, histories, strict=True)),
    Path(snakemake.output.png).with_suffix(""),
    title=snakemake.params.figure.get("title", ""),
)
