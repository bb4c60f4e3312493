"""Planning the workflow from its config: runs, batches, targets and each job's spec.

``Plan`` decides (which runs, in which batches, for which targets); ``Steps`` turns its
decisions into the typed spec of each ``cap`` job. Both are pure functions of the
validated config, without Snakemake.
"""

from cap.workflow.plan import Plan
from cap.workflow.references import ConfigReferenceError, check_references
from cap.workflow.steps import Steps
from cap.workflow.targets import Batch, Run
from cap.workflow.variants import Setting

__all__ = ["Batch", "ConfigReferenceError", "Plan", "Run", "Setting", "Steps", "check_references"]
