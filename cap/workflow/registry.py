"""The workflow's rules: each `cap` step (:mod:`cap.workflow.steps`), each script rule,
each figure kind (:mod:`cap.workflow.figures`), with its placement and resources, and
every list of rules derived from them: the jobs' logs and timing files (Snakemake's
``benchmark:``), the spec writers, the ``cap`` command's sub-commands, each rule's
threads, GPU slot and local or cluster placement, the targets of ``all`` that no config
decides, and the names a table may not take."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cap.workflow.figures import FIGURE_KINDS
from cap.workflow.layout import (
    BATCH,
    BOOTSTRAP,
    CLAIMS,
    CLAIMS_FIGURE,
    CONCORDANCE,
    LEADERBOARD,
    REPORT,
    RESULTS,
    RUNS_TABLE,
    TABLES_FOLDER,
)
from cap.workflow.rule import Rule
from cap.workflow.steps import STEP, STEPS

if TYPE_CHECKING:
    from cap.workflow.plan import Plan


def always(plan: Plan) -> bool:
    """Every config's ``all`` builds it."""
    return True


def ranks(plan: Plan) -> bool:
    """The config ranks a table's methods, and ``only`` left that table runs."""
    return plan.config.report.leaderboard in plan.targets.tables


def concords(plan: Plan) -> bool:
    """The config compares a table's rankings across backbones, and ``only`` left that
    table runs on two datasets or more (one backbone has no other to agree with)."""
    table = plan.config.report.concordance
    if table not in plan.targets.tables:
        return False
    return len({run.dataset for run in plan.targets.table_runs(table)}) >= 2


def bootstraps(plan: Plan) -> bool:
    """The config asks for intervals over test images, and a dataset with masks has runs."""
    return plan.config.report.bootstrap > 0 and any(
        plan.localizes(batch.dataset) for batch in plan.batches
    )


def draws_claims(plan: Plan) -> bool:
    """The config asks for its claims' figure, and has claims left to judge."""
    return plan.config.report.claims_figure and bool(plan.claims_job().claims)


#: The workflow's rules, in the order of its steps: the `cap` steps, then the script rules.
RULES: tuple[Rule, ...] = (
    *(step.rule for step in STEPS),
    Rule("localize", BATCH, twin="evaluate", gpu=True, threads=2, mem_mb=8000),  # with masks
    Rule("aggregate", None, local=True, outputs={"runs": RUNS_TABLE}, final=always),
    Rule("table", "{table}", local=True),
    Rule("claims", None, local=True, outputs={"claims": CLAIMS}, final=always),
    Rule("leaderboard", None, local=True, outputs=LEADERBOARD, final=ranks),
    Rule("bootstrap", None, local=True, outputs=BOOTSTRAP, final=bootstraps),
    Rule("concordance", None, local=True, outputs=CONCORDANCE, final=concords),
    Rule("claims_figure", None, local=True, outputs=CLAIMS_FIGURE, final=draws_claims),
    *(kind.rule for kind in FIGURE_KINDS.values()),
    Rule("report", None, local=True, outputs={"md": REPORT}, final=always),
)
#: Each rule by name.
RULE: dict[str, Rule] = {rule.name: rule for rule in RULES}
#: The ``cap`` steps: each job of theirs reads one spec file (:mod:`cap.evaluation.jobs`),
#: written by the rule ``spec_<step>``; its command is ``cap <step>``.
SPEC_STEPS: tuple[str, ...] = tuple(STEP)
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
