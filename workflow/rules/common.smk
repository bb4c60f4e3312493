# Config validation, wildcard constraints and the input functions of the workflow.
# Every decision is made by cap.planning (unit-tested) from the config typed
# once (Plan(config)); every rule's placement, threads and GPU slot come from the table
# of rules, cap.planning.layout.RULES. These wrappers only hand the plan the wildcards.
import dataclasses
import os
import shlex
import shutil
import sys

from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from cap.planning import layout
from cap.evaluation.jobs import check_unedited, spec_data
from cap.planning.layout import RULE
from cap.planning import Plan, Steps
from cap.planning.schema import config_schema_file
from cap.reporting.paper import check_paper_results

validate(config, schema=config_schema_file(workflow.basedir, config))
PLAN = Plan(config)
STEPS = Steps(PLAN)
# The paper's numbers: read from the working directory or this repository only.
check_paper_results(
    PLAN.config.report.paper_results, project=[os.getcwd(), os.path.dirname(workflow.basedir)]
)

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
    **PLAN.wildcard_constraints(),


def gpu_slots(name):
    """The GPU slots a job of rule ``name`` takes (layout.RULES says which may use one)."""
    return GPU_SLOTS if RULE[name].gpu else 0


def as_data(get_spec):
    """An input function returning a spec as plain data: Snakemake's params trigger compares
    only builtin values (a dataclass would never rerun its job)."""
    return lambda wildcards: dataclasses.asdict(get_spec(wildcards))


def planned_spec(step):
    """The params of a spec writer: the planned spec of a `cap` step's job as plain data,
    once the file written before is checked to be unedited (a hand-edited spec stops the
    run, naming its field)."""

    def get(wildcards):
        fields = dict(wildcards.items())
        planned = spec_data(STEPS.spec(step, fields))
        check_unedited(layout.spec_path(step).format(**fields), planned)
        return planned

    return get


def get_embed_inputs(wildcards):
    return STEPS.embed_inputs(wildcards.dataset, wildcards.backbone)


def get_split_inputs(wildcards):
    return STEPS.split_inputs(wildcards.dataset, wildcards.backbone, wildcards.cls)


def get_train_inputs(wildcards):
    return STEPS.class_inputs(PLAN.find_batch(wildcards))


def get_evaluate_inputs(wildcards):
    return STEPS.evaluate_inputs(PLAN.find_batch(wildcards))


def get_evaluate_gpu_slots(wildcards):
    return gpu_slots("evaluate") if PLAN.batch_trains(PLAN.find_batch(wildcards)) else 0


def get_table_records(wildcards):
    return PLAN.record_files(PLAN.targets.table_runs(wildcards.table))


def get_table_labels(wildcards):
    return PLAN.run_labels(PLAN.targets.table_runs(wildcards.table))


def get_table_spec(wildcards):
    return PLAN.targets.table_spec(wildcards.table)


def get_report_sections():
    """The Markdown of the once-rules that are targets (the leaderboard) for the report."""
    return {
        once.name: once.outputs["md"]
        for once in PLAN.final_rules()
        if "md" in once.outputs and once.name != "report"
    }


def get_figure_inputs(kind):
    return lambda wildcards: STEPS.figure_inputs(kind, wildcards)


def get_figure(kind):
    return lambda wildcards: dataclasses.asdict(PLAN.targets.find_figure(kind, wildcards))


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
