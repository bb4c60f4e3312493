"""Where the workflow writes everything: one path pattern per kind of output.

The Snakemake rules, the planning modules and the writers all take their paths from
here, so that a file's place is stated once (which rule writes it:
:mod:`cap.workflow.registry`). Patterns use the workflow's wildcards: ``dataset``,
``backbone``, ``cls`` (class id or MVTec category), ``bank`` (``all`` or the bank size N),
``setting`` (a setting's content key, e.g. ``cap-1f3a9c02b7``), ``seed``, ``variant`` (a
figure's variant label), ``subset``, ``split`` (one of :data:`SPLITS`), ``resource``,
``table``, ``name``.
"""

from __future__ import annotations

from cap.reporting.tables import TABLE_SUFFIXES

RESULTS = "results"
#: A run: one setting and seed on one class's bank.
RUN = "{dataset}/{backbone}/{cls}/{bank}/{setting}/seed{seed}"
#: A batch: every run of one class and bank, made by one ``evaluate`` job.
BATCH = "{dataset}/{backbone}/{cls}/{bank}"

#: The external inputs (datasets, weights), one folder each: the ``fetch`` rule writes
#: nowhere else.
RESOURCES = "resources"
RESOURCE = f"{RESOURCES}/{{resource}}"
#: The torch backbones' ONNX exports, by content key (:mod:`cap.backbones.torch_onnx`):
#: made from the weights by the embed jobs, kept beside them under a name that no
#: resource can take (resource names do not start with a dot).
EXPORTS = f"{RESOURCES}/.onnx"
EMBEDDINGS = f"{RESULTS}/embeddings/{{dataset}}/{{backbone}}/{{subset}}/{{split}}.h5"
#: Neighbours of a class's bank: ``bank`` is ``all`` or the bank size N of its runs.
NEIGHBORS = f"{RESULTS}/neighbors/{{dataset}}/{{backbone}}/{{cls}}/{{bank}}.h5"
#: A trained model, kept for the figures that draw it (or for every run: keep_models).
MODEL = f"{RESULTS}/models/{RUN}.pt"
#: Finished runs by content key (:mod:`cap.evaluation.cache`): never made twice.
RUN_CACHE = f"{RESULTS}/cache/runs"
#: Each run of a batch: identity, settings, AUROC, timings and training history.
RECORDS = f"{RESULTS}/runs/{BATCH}.json"
#: Each run's anomaly score of every test image, one row per (run, image).
SCORES = f"{RESULTS}/scores/{BATCH}.csv.gz"
#: Each localizing run's anomaly maps, on datasets with defect masks (``localize``), each
#: under :func:`cap.evaluation.records.map_name`.
MAPS = f"{RESULTS}/maps/{BATCH}.npz"
#: Every run in one long-form table, one row per run (config/README.md lists its columns).
RUNS_TABLE = f"{RESULTS}/tables/runs.csv"
#: Every claim judged: one row per (claim, dataset), with its interval and verdict.
CLAIMS = f"{RESULTS}/tables/claims.csv"
#: Every method of the config's leaderboard table ranked per dataset, with its cost.
LEADERBOARD = {kind: f"{RESULTS}/tables/leaderboard.{kind}" for kind in ("csv", "md")}
#: Every metric of each category of the datasets with masks with its bootstrap interval
#: over test images, the paired differences of its methods, and both as Markdown.
BOOTSTRAP = {
    "intervals": f"{RESULTS}/tables/bootstrap.csv",
    "differences": f"{RESULTS}/tables/bootstrap_differences.csv",
    "md": f"{RESULTS}/tables/bootstrap.md",
}
#: How alike the backbones (a table's datasets) rank its methods: the statistics, each
#: backbone's method means, both as Markdown, and the methods × backbones figure.
CONCORDANCE = {
    "statistics": f"{RESULTS}/tables/concordance.csv",
    "means": f"{RESULTS}/tables/concordance_means.csv",
    "md": f"{RESULTS}/tables/concordance.md",
    "png": f"{RESULTS}/tables/concordance.png",
    "pdf": f"{RESULTS}/tables/concordance.pdf",
}
#: Each of the config's own claims' paired difference per dataset (and pooled), a figure.
CLAIMS_FIGURE = {kind: f"{RESULTS}/tables/claims.{kind}" for kind in ("png", "pdf")}
REPORT = f"{RESULTS}/report/reproduction.md"

#: A table's files: ``{TABLE}{suffix}`` for each kind (written by ``cap.reporting.tables``).
TABLE = f"{RESULTS}/tables/{{table}}"

#: Where a table's files and the once-rules' tables go.
TABLES_FOLDER = f"{RESULTS}/tables"


def table_files(table: str) -> dict[str, str]:
    """Kind (``csv``, ``md``, ``tex``, ``per_class``) → path of one table's file."""
    prefix = TABLE.format(table=table)
    return {kind: f"{prefix}{suffix}" for kind, suffix in TABLE_SUFFIXES.items()}
