# Config validation, wildcard constraints and the input functions of the workflow.
# Every decision is made by cap.benchmark.plan (unit-tested); these wrappers only
# hand it the wildcards.
import os
import re
import shlex
import shutil
import sys

from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from cap.benchmark import layout
from cap.benchmark.plan import Plan

validate(config, schema="../schemas/config.schema.yaml")
PLAN = Plan(config)

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
    variant="|".join(map(re.escape, PLAN.variants)),
    batch="|".join(sorted({re.escape(batch.name) for batch in PLAN.batches})),
    cls="|".join(sorted({re.escape(c) for d in PLAN.datasets for c in PLAN.class_ids(d)})),
    resource="|".join(map(re.escape, config["resources"])),
    table="|".join(map(re.escape, config["tables"])),
    split="train|test",
    seed=r"\d+",
    name="|".join(map(re.escape, (f["name"] for f in config["figures"].get("bank_curves", []))))
    or "-",
    bank=r"all|\d+",


def get_fetch_args(wildcards):
    return PLAN.fetch_args(wildcards.resource)


def get_embed_inputs(wildcards):
    return PLAN.embed_inputs(wildcards.dataset, wildcards.backbone)


def get_embed_args(wildcards):
    return PLAN.embed_args(wildcards.dataset, wildcards.backbone, wildcards.subset, wildcards.split)


def get_split_inputs(wildcards):
    return PLAN.split_inputs(wildcards.dataset, wildcards.backbone, wildcards.cls)


def get_neighbor_args(wildcards):
    return PLAN.neighbor_args(**dict(wildcards.items()))


def get_train_inputs(wildcards):
    return PLAN.train_inputs(**dict(wildcards.items()))


def get_train_args(wildcards):
    return PLAN.train_args(**dict(wildcards.items()))


def get_evaluate_inputs(wildcards):
    return PLAN.evaluate_inputs(**dict(wildcards.items()))


def get_evaluate_args(wildcards):
    return PLAN.evaluate_args(**dict(wildcards.items()))


def get_evaluate_gpu_slots(wildcards):
    return GPU_SLOTS if PLAN.batch_trains(wildcards.dataset, wildcards.cls, wildcards.batch) else 0


def get_table_records(wildcards):
    return PLAN.record_files(PLAN.table_runs(wildcards.table))


def get_table_spec(wildcards):
    return PLAN.table_spec(wildcards.table)


def get_figure_inputs(kind):
    return lambda wildcards: PLAN.figure_inputs(kind, dict(wildcards.items()))


def get_figure(kind):
    return lambda wildcards: PLAN.find_figure(kind, dict(wildcards.items()))


def get_figure_records(kind):
    return lambda wildcards: PLAN.figure_records(kind, dict(wildcards.items()))


def get_curves(kind):
    return lambda wildcards: PLAN.curve_specs(kind, dict(wildcards.items()))


def get_figure_dataset(wildcards):
    return PLAN.figure_dataset(wildcards.dataset, wildcards.cls)


def get_figure_run_params(kind):
    return lambda wildcards: PLAN.figure_run_params(kind, dict(wildcards.items()))
