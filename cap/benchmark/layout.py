"""Where the workflow writes everything: one path pattern per kind of output.

The Snakemake rules, the planning module and the writers all take their paths
from here, so that a file's place is stated once. Patterns use the workflow's
wildcards: ``dataset``, ``backbone``, ``cls`` (class id or MVTec category), ``bank``
(``all`` or the bank size N), ``setting`` (a setting's content key, e.g.
``cap-1f3a9c02b7``), ``seed``, ``variant`` (a figure's variant label), ``subset``,
``split`` (train or test), ``resource``, ``table``, ``name``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

RESULTS = "results"
#: A run: one setting and seed on one class's bank.
RUN = "{dataset}/{backbone}/{cls}/{bank}/{setting}/seed{seed}"
#: A batch: every run of one class and bank, made by one ``evaluate`` job.
BATCH = "{dataset}/{backbone}/{cls}/{bank}"

RESOURCE = "resources/{resource}"
EMBEDDINGS = f"{RESULTS}/embeddings/{{dataset}}/{{backbone}}/{{subset}}/{{split}}.h5"
#: Neighbours of a class's bank: ``bank`` is ``all`` or the bank size N of its runs.
NEIGHBORS = f"{RESULTS}/neighbors/{{dataset}}/{{backbone}}/{{cls}}/{{bank}}.h5"
#: A trained model, kept for the figures that draw it (or for every run: keep_models).
MODEL = f"{RESULTS}/models/{RUN}.pt"
#: Finished runs by content key (:mod:`cap.benchmark.cache`): never made twice.
RUN_CACHE = f"{RESULTS}/cache/runs"
#: Each run of a batch: identity, settings, AUROC, timings and training history.
RECORDS = f"{RESULTS}/runs/{BATCH}.json"
#: Each run's anomaly score of every test image, one row per (run, image).
SCORES = f"{RESULTS}/scores/{BATCH}.csv.gz"
#: Every run in one long-form table, one row per run (config/README.md lists its columns).
RUNS_TABLE = f"{RESULTS}/tables/runs.csv"
#: Every claim judged: one row per (claim, dataset), with its interval and verdict.
CLAIMS = f"{RESULTS}/tables/claims.csv"
#: Every method of the config's leaderboard table ranked per dataset, with its cost.
LEADERBOARD = {kind: f"{RESULTS}/tables/leaderboard.{kind}" for kind in ("csv", "md")}
REPORT = f"{RESULTS}/report/reproduction.md"

#: A table's files: ``{TABLE}{suffix}`` for each kind (written by ``cap.reporting.tables``).
TABLE = f"{RESULTS}/tables/{{table}}"
TABLE_SUFFIXES: dict[str, str] = {
    "csv": ".csv",
    "md": ".md",
    "tex": ".tex",
    "per_class": "_per_class.csv",
}

#: Figure kinds of the config's ``figures`` section and the stem of each figure's files
#: (``.png`` for the report, ``.pdf`` for papers).
FIGURES: dict[str, str] = {
    "attention": f"{RESULTS}/figures/attention/{{dataset}}/{{backbone}}/{{cls}}/{{variant}}",
    "score_curves": f"{RESULTS}/figures/score_curves/{{dataset}}/{{backbone}}/{{cls}}",
    "anomaly_maps": f"{RESULTS}/figures/anomaly_maps/{{dataset}}/{{backbone}}/{{cls}}/{{variant}}",
    "bank_curves": f"{RESULTS}/figures/bank_curves/{{dataset}}/{{backbone}}/{{name}}",
}
FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf")

#: The ``cap`` steps: each job of theirs reads one spec file (:mod:`cap.benchmark.jobs`).
SPEC_STEPS: tuple[str, ...] = ("fetch", "embed", "neighbors", "train", "evaluate")


#: Each rule's job identity: its log is ``logs/<rule>/<id>.log`` and its benchmark
#: ``benchmarks/<rule>/<id>.tsv`` (``logs/<rule>.log`` for rules that run once).
JOB_IDS: dict[str, str | None] = {
    "fetch": "{resource}",
    "embed": "{dataset}/{backbone}/{subset}/{split}",
    "neighbors": "{dataset}/{backbone}/{cls}/{bank}",
    "train": RUN,
    "evaluate": BATCH,
    "aggregate": None,
    "claims": None,
    "leaderboard": None,
    "table": "{table}",
    "figure_attention": "{dataset}/{backbone}/{cls}/{variant}",
    "figure_score_curves": "{dataset}/{backbone}/{cls}",
    "figure_anomaly_maps": "{dataset}/{backbone}/{cls}/{variant}",
    "figure_bank_curves": "{dataset}/{backbone}/{name}",
    "report": None,
}
#: The rules writing each ``cap`` step's spec files log where that step's jobs do.
JOB_IDS.update({f"spec_{step}": JOB_IDS[step] for step in SPEC_STEPS})


def spec_path(rule: str) -> str:
    """The spec file pattern of a ``cap`` step's jobs."""
    return _job_path("specs", rule, "json")


def table_files(table: str) -> dict[str, str]:
    """Kind (``csv``, ``md``, ``tex``, ``per_class``) → path of one table's file."""
    prefix = TABLE.format(table=table)
    return {kind: f"{prefix}{suffix}" for kind, suffix in TABLE_SUFFIXES.items()}


def log_path(rule: str) -> str:
    """The log pattern of ``rule``."""
    return _job_path("logs", rule, "log")


def benchmark_path(rule: str) -> str:
    """The benchmark (runtime, memory) pattern of ``rule``."""
    return _job_path("benchmarks", rule, "tsv")


def _job_path(folder: str, rule: str, extension: str) -> str:
    job = JOB_IDS[rule]
    name = rule if job is None else f"{rule}/{job}"
    return f"{RESULTS}/{folder}/{name}.{extension}"


def find_job_files(
    folder: str, root: str | Path = "."
) -> Iterator[tuple[str, dict[str, str], Path]]:
    """Every job file under ``<root>/results/<folder>`` (``logs``, ``benchmarks``) whose
    path matches a rule's pattern: (rule, wildcards, path)."""
    base = Path(root) / RESULTS / folder
    for rule in JOB_IDS:
        pattern = _job_path(folder, rule, "*").removeprefix(f"{RESULTS}/{folder}/")
        regex = re.compile(_regex(pattern))
        for path in sorted(base.glob(_glob(pattern))):
            match = regex.fullmatch(path.relative_to(base).as_posix())
            if match:
                yield rule, match.groupdict(), path


def _glob(pattern: str) -> str:
    return re.sub(r"\{[^}]+\}", "*", pattern)


def _regex(pattern: str) -> str:
    parts = re.split(r"(\{[^}]+\})", pattern)
    return "".join(
        f"(?P<{part[1:-1]}>[^/]+)"
        if part.startswith("{")
        else re.escape(part).replace(r"\*", "[^/]+")
        for part in parts
    )
