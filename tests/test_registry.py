"""The table of rules (cap.workflow.registry.RULES) and every list derived from it: the
workflow's rules with their placement and threads, the spec writers, the `cap` command's
sub-commands, the SLURM profile, the job files' patterns."""

from __future__ import annotations

import re

import pytest
import yaml
from assets import REPO

from cap.cli import COMMAND_MODULES, build_parser
from cap.workflow import registry
from cap.workflow.figures import FIGURE_KINDS
from cap.workflow.rule import Rule
from cap.workflow.steps import STEPS

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"


@pytest.fixture(scope="module")
def workflow():
    """The workflow's rules as Snakemake reads them (the smoke config; no DAG is built)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        loaded = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[REPO / "tests/configs/smoke.yaml"]),
            snakefile=REPO / "workflow" / "Snakefile",
            workdir=REPO,  # where the config's paper_results path lies
        )
        yield loaded._workflow


def test_the_workflow_defines_each_rule_as_the_table_says(workflow):
    rules = {rule.name: rule for rule in workflow.rules}
    spec_writers = {f"spec_{step}" for step in registry.SPEC_STEPS}
    targets = {"all", "table1", "table3"} | {f"fig_{kind}" for kind in FIGURE_KINDS}
    assert set(rules) == {rule.name for rule in registry.RULES} | spec_writers | targets
    for rule in registry.RULES:
        assert (rule.name in workflow._localrules) == rule.local, rule.name
        assert rules[rule.name].resources["_cores"] == rule.threads, rule.name
    assert spec_writers <= workflow._localrules


def test_each_step_has_its_rule_its_command_and_its_spec_writer():
    """From each step's one declaration: its rule, ``cap <step> SPEC`` describing its spec,
    its spec writer, and its place in the pipeline."""
    assert tuple(step.name for step in STEPS) == registry.SPEC_STEPS
    assert len({step.stage for step in STEPS}) == len(STEPS)
    assert [rule.name for rule in registry.RULES[: len(STEPS)]] == list(registry.SPEC_STEPS)
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {*registry.SPEC_STEPS, *COMMAND_MODULES}
    for step in STEPS:
        assert registry.RULE[step.name] is step.rule
        assert step.spec.__name__ in commands[step.name].format_help(), step.name
    assert set(registry.JOB_IDS) == {rule.name for rule in registry.RULES} | {
        f"spec_{step}" for step in registry.SPEC_STEPS
    }
    assert registry.JOB_IDS["spec_evaluate"] == registry.RULE["evaluate"].job


def test_the_slurm_profile_follows_the_table():
    """Its comment names every local rule; its threads, memory and time are the table's."""
    profile = yaml.safe_load(PROFILE.read_text())
    comment = " ".join(
        line.lstrip("# ") for line in PROFILE.read_text().splitlines() if line.startswith("#")
    )
    named = set(re.findall(r"\b[a-z_]+\b", comment.split("The local rules run")[1].split(".")[0]))
    local = {rule.name for rule in registry.RULES if rule.local}
    assert local <= named and "spec_" in comment
    defaults = Rule("default", None)
    assert profile["default-resources"]["mem_mb"] == defaults.mem_mb
    assert profile["default-resources"]["runtime"] == defaults.runtime
    assert profile["set-threads"] == {r.name: r.threads for r in registry.RULES if r.threads > 1}
    for rule in registry.RULES:
        resources = profile["set-resources"].get(rule.name, {})
        assert resources.get("mem_mb", defaults.mem_mb) == rule.mem_mb, rule.name
        assert resources.get("runtime", defaults.runtime) == rule.runtime, rule.name
        assert ("gpu" in resources) == rule.gpu, rule.name


def test_each_figure_kind_draws_with_a_function_of_cap_and_has_its_caption():
    for kind in FIGURE_KINDS.values():
        assert kind.draw.startswith("cap.") and callable(kind.drawing()), kind.name
        assert (REPO / "workflow" / "report" / f"{kind.name}.rst").is_file(), kind.name
