# Config validation, wildcard constraints and the input functions of the workflow.
# Every decision is made by cap.benchmark.planning (unit-tested); these wrappers only
# hand it the wildcards.
import dataclasses
import os
import re
import shlex
import shutil
import sys

from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from cap.benchmark import layout
from cap.benchmark.jobs import KEY_PATTERN, check_unedited, spec_data
from cap.benchmark.planning import Plan, Steps

validate(config, schema="../schemas/config.schema.yaml")
PLAN = Plan(config)
STEPS = Steps(PLAN)

# Jobs find the `cap` command beside this interpreter, so that `venv/bin/snakemake`
# works without activating the venv (under --use-conda, the rule's environment has it).
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:

    shell.prefix(
        f"set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
    )

#: One software environment for every rule (used with --use-conda).
CONDA_ENV = "../../environment.yml"
#: GPU slots a GPU-capable job takes: one where a GPU is visible (the default profile
#: then runs one such job at a time), none on CPU-only machines.
GPU_SLOTS = 1 if shutil.which("nvidia-smi") else 0


wildcard_constraints:
    dataset="|".join(map(re.escape, PLAN.datasets)),
    backbone="|".join(map(re.escape, config["backbones"])),
    variant="|".join(map(re.escape, PLAN.variants.names)),
    setting=KEY_PATTERN,
    cls="|".join(sorted({re.escape(c) for d in PLAN.datasets for c in PLAN.class_ids(d)})),
    resource="|".join(map(re.escape, config["resources"])),
    table="|".join(map(re.escape, config["tables"])),
    split="train|test",
    seed=r"\d+",
    name="|".join(map(re.escape, (f["name"] for f in config["figures"].get("bank_curves", []))))
    or "-",
    bank=r"all|\d+",


def as_data(get_spec):
    """An input function returning a spec as plain data: Snakemake's params trigger compares
    only builtin values (a dataclass would never rerun its job)."""
    return lambda wildcards: dataclasses.asdict(get_spec(wildcards))


def planned_spec(step, get_job):
    """The params of a spec writer: the planned spec as plain data, once the file written
    before is checked to be unedited (a hand-edited spec stops the run, naming its field)."""

    def get(wildcards):
        planned = spec_data(get_job(wildcards))
        check_unedited(layout.spec_path(step).format(**wildcards), planned)
        return planned

    return get


def get_fetch_job(wildcards):
    return STEPS.fetch_job(wildcards.resource)


def get_embed_inputs(wildcards):
    return STEPS.embed_inputs(wildcards.dataset, wildcards.backbone)


def get_embed_job(wildcards):
    return STEPS.embed_job(wildcards.dataset, wildcards.backbone, wildcards.subset, wildcards.split)


def get_split_inputs(wildcards):
    return STEPS.split_inputs(wildcards.dataset, wildcards.backbone, wildcards.cls)


def get_neighbors_job(wildcards):
    return STEPS.neighbors_job(PLAN.find_batch(wildcards))


def get_train_inputs(wildcards):
    return STEPS.class_inputs(PLAN.find_batch(wildcards))


def get_train_job(wildcards):
    return STEPS.train_job(STEPS.train_run(wildcards))


def get_evaluate_inputs(wildcards):
    return STEPS.evaluate_inputs(PLAN.find_batch(wildcards))


def get_evaluate_job(wildcards):
    return STEPS.evaluate_job(PLAN.find_batch(wildcards))


def get_evaluate_gpu_slots(wildcards):
    return GPU_SLOTS if PLAN.batch_trains(PLAN.find_batch(wildcards)) else 0


def get_table_records(wildcards):
    return PLAN.record_files(PLAN.targets.table_runs(wildcards.table))


def get_table_labels(wildcards):
    return PLAN.run_labels(PLAN.targets.table_runs(wildcards.table))


def get_table_spec(wildcards):
    return PLAN.targets.table_spec(wildcards.table)


def get_leaderboard_spec(wildcards):
    return PLAN.targets.table_spec(config["report"]["leaderboard"])


def get_leaderboard_inputs():
    """The leaderboard's Markdown for the report, where the config ranks a table."""
    return {"leaderboard": layout.LEADERBOARD["md"]} if PLAN.leaderboard_outputs() else {}


def get_figure_inputs(kind):
    return lambda wildcards: STEPS.figure_inputs(kind, wildcards)


def get_figure(kind):
    return lambda wildcards: dict(sorted(PLAN.targets.find_figure(kind, wildcards).items()))


def get_figure_records(kind):
    return lambda wildcards: PLAN.record_files(
        PLAN.targets.figure_runs(kind, PLAN.targets.find_figure(kind, wildcards))
    )


def get_curves(kind):
    return lambda wildcards: PLAN.targets.curve_specs(kind, wildcards)


def get_figure_dataset(wildcards):
    return STEPS.figure_dataset(wildcards.dataset, wildcards.cls)


def get_figure_task(kind):
    return as_data(lambda wildcards: STEPS.figure_task(kind, wildcards))
