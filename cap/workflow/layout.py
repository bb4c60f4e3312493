"""Where the workflow writes everything, and which rule writes it: one path pattern per
kind of output, and :data:`RULES`, the table of the workflow's rules.

The Snakemake rules, the planning module and the writers all take their paths
from here, so that a file's place is stated once. Patterns use the workflow's
wildcards: ``dataset``, ``backbone``, ``cls`` (class id or MVTec category), ``bank``
(``all`` or the bank size N), ``setting`` (a setting's content key, e.g.
``cap-1f3a9c02b7``), ``seed``, ``variant`` (a figure's variant label), ``subset``,
``split`` (train or test), ``resource``, ``table``, ``name``.

Every list of rules elsewhere is derived from :data:`RULES`: the jobs' logs and
timing files (Snakemake's ``benchmark:``), the ``cap`` steps and their spec writers, the
``cap`` command's sub-commands, each rule's threads, GPU slot and local or cluster placement, the
targets of ``all`` that no config decides, and the names a table may not take.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cap.evaluation import jobs
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
REPORT = f"{RESULTS}/report/reproduction.md"

#: A table's files: ``{TABLE}{suffix}`` for each kind (written by ``cap.reporting.tables``).
TABLE = f"{RESULTS}/tables/{{table}}"

#: Figure kinds of the config's ``figures`` section and the stem of each figure's files
#: (``.png`` for the report, ``.pdf`` for papers).
FIGURES: dict[str, str] = {
    "attention": f"{RESULTS}/figures/attention/{{dataset}}/{{backbone}}/{{cls}}/{{variant}}",
    "score_curves": f"{RESULTS}/figures/score_curves/{{dataset}}/{{backbone}}/{{cls}}",
    "anomaly_maps": f"{RESULTS}/figures/anomaly_maps/{{dataset}}/{{backbone}}/{{cls}}/{{variant}}",
    "bank_curves": f"{RESULTS}/figures/bank_curves/{{dataset}}/{{backbone}}/{{name}}",
    "localization": f"{RESULTS}/figures/localization/{{dataset}}/{{backbone}}/{{cls}}",
}
FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf")

#: Where a table's files and the once-rules' tables go.
TABLES_FOLDER = f"{RESULTS}/tables"


@dataclass(frozen=True)
class Rule:
    """One rule of the workflow, as every place that lists rules reads it."""

    name: str  # the rule's name; its logs and timings are filed under it
    job: str | None  # the wildcards naming one of its jobs (a pattern); None: it runs once
    spec: type | None = None  # a `cap` step: the spec its command reads; None: a script rule
    twin: str | None = None  # runs that `cap` step's command and spec, for more outputs
    local: bool = False  # runs where Snakemake runs, never submitted to a cluster
    gpu: bool = False  # takes a GPU slot where a GPU is visible
    threads: int = 1  # CPUs of a job (capped by --cores)
    mem_mb: int = 4000  # memory a cluster job asks for
    runtime: int = 60  # minutes a cluster job asks for
    outputs: Mapping[str, str] = field(default_factory=dict)  # a once-rule's named outputs
    final: str | None = None  # a once-rule's outputs are targets of `all`: "always", or
    #  while this config key (dotted, of cap.workflow.config.Config) is set


#: The workflow's rules, in the order of its steps.
RULES: tuple[Rule, ...] = (
    Rule("fetch", "{resource}", jobs.FetchJob, local=True),
    Rule(
        "embed",
        "{dataset}/{backbone}/{subset}/{split}",
        jobs.EmbedJob,
        gpu=True,
        threads=8,
        mem_mb=16000,
        runtime=240,
    ),
    Rule("neighbors", BATCH, jobs.NeighborsJob),
    Rule("train", RUN, jobs.TrainJob, gpu=True, mem_mb=8000),
    Rule("evaluate", BATCH, jobs.EvaluateJob, gpu=True, mem_mb=8000),
    Rule("localize", BATCH, twin="evaluate", gpu=True, threads=2, mem_mb=8000),  # with masks
    Rule("aggregate", None, local=True, outputs={"runs": RUNS_TABLE}, final="always"),
    Rule("table", "{table}", local=True),
    Rule("claims", None, local=True, outputs={"claims": CLAIMS}, final="always"),
    Rule("leaderboard", None, local=True, outputs=LEADERBOARD, final="report.leaderboard"),
    Rule("bootstrap", None, local=True, outputs=BOOTSTRAP, final="report.bootstrap"),
    Rule("concordance", None, local=True, outputs=CONCORDANCE, final="report.concordance"),
    Rule("figure_attention", "{dataset}/{backbone}/{cls}/{variant}"),
    Rule("figure_score_curves", "{dataset}/{backbone}/{cls}", local=True),
    Rule("figure_anomaly_maps", "{dataset}/{backbone}/{cls}/{variant}"),
    Rule("figure_bank_curves", "{dataset}/{backbone}/{name}", local=True),
    Rule("figure_localization", "{dataset}/{backbone}/{cls}", local=True),
    Rule("report", None, local=True, outputs={"md": REPORT}, final="always"),
)
#: Each rule by name.
RULE: dict[str, Rule] = {rule.name: rule for rule in RULES}
#: The ``cap`` steps: each job of theirs reads one spec file (:mod:`cap.evaluation.jobs`),
#: written by the rule ``spec_<step>``; its command is ``cap <step>`` (``cap.cli.<step>``).
SPEC_STEPS: tuple[str, ...] = tuple(rule.name for rule in RULES if rule.spec is not None)
#: Each rule's job identity: its log is ``logs/<rule>/<id>.log`` and its timing
#: ``timings/<rule>/<id>.tsv`` (``logs/<rule>.log`` for rules that run once); the spec
#: writers log where their step's jobs do.
JOB_IDS: dict[str, str | None] = {
    **{rule.name: rule.job for rule in RULES},
    **{f"spec_{step}": RULE[step].job for step in SPEC_STEPS},
}


#: The prefix of the figure kinds' targets (``fig_attention``): no table's name.
FIGURE_TARGET_PREFIX = "fig_"


def reserved_table_names() -> set[str]:
    """Names a table may not take: a table names its target and its files under
    ``results/tables/``, so not a rule's name, ``all``, or the name of a file another
    rule writes there (``runs``, ``claims``, ``leaderboard``); nor may it start with
    :data:`FIGURE_TARGET_PREFIX`."""
    written = {
        Path(path).name.split(".")[0]
        for rule in RULES
        for path in rule.outputs.values()
        if Path(path).parent.as_posix() == TABLES_FOLDER
    }
    return {"all", *JOB_IDS, *written}


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


def timing_path(rule: str) -> str:
    """The timing (Snakemake benchmark: runtime, memory) pattern of ``rule``."""
    return _job_path("timings", rule, "tsv")


def _job_path(folder: str, rule: str, extension: str) -> str:
    job = JOB_IDS[rule]
    name = rule if job is None else f"{rule}/{job}"
    return f"{RESULTS}/{folder}/{name}.{extension}"


def find_job_files(
    folder: str, root: str | Path = "."
) -> Iterator[tuple[str, dict[str, str], Path]]:
    """Every job file under ``<root>/results/<folder>`` (``logs``, ``timings``) whose
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
