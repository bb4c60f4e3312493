# Config validation, wildcard constraints and the input functions of the workflow.
# Every decision is made by cap.workflow (unit-tested) from the config typed
# once (Plan(config)); every rule's placement, threads and GPU slot come from the table
# of rules, cap.workflow.registry.RULES. These wrappers only hand the plan the wildcards.
import dataclasses
import os
import shlex
import shutil
import sys

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from cap.evaluation.jobs import check_unedited, spec_data
from cap.reporting.paper import check_paper_results
from cap.workflow import Plan, Steps, layout, registry
from cap.workflow.figures import FIGURE_KINDS
from cap.workflow.registry import RULE
from cap.workflow.schema import validated
from cap.workflow.shared import read_config_file

# A config file is data: one that Snakemake evaluated as a template stops the run here.
for path in workflow.overwrite_configfiles:
    read_config_file(path)
# The schema, its detector parts from the declarations of the methods the config names.
validated(config)
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
    """The GPU slots a job of rule ``name`` takes (registry.RULES says which may use one)."""
    return GPU_SLOTS if RULE[name].gpu else 0


def planned_spec(step):
    """The params of a spec writer: the planned spec of a `cap` step's job as plain data,
    once the file written before is checked to be unedited (a hand-edited spec stops the
    run, naming its field)."""

    def get(wildcards):
        fields = dict(wildcards.items())
        planned = spec_data(STEPS.spec(step, fields))
        check_unedited(registry.spec_path(step).format(**fields), planned)
        return planned

    return get


def step_inputs(step):
    """The input function of a `cap` step's rule: what its job reads besides its spec."""
    return lambda wildcards: STEPS.inputs(step, dict(wildcards.items()))


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


def figure_inputs(kind):
    """The input function of a figure kind's rule: the files its figure job reads."""
    return lambda wildcards: FIGURE_KINDS[kind].inputs(
        STEPS, PLAN.targets.find_figure(kind, wildcards)
    )


def figure_params(kind):
    """What a figure kind's drawing reads besides its files, as plain data."""
    return lambda wildcards: FIGURE_KINDS[kind].params(
        STEPS, PLAN.targets.find_figure(kind, wildcards)
    )
