"""Planning the workflow from its config: runs, batches, targets and each job's spec.

``Plan`` decides (which runs, in which batches, for which targets); ``Steps`` turns its
decisions into the typed spec of each ``cap`` job. Both are pure functions of the
validated config, without Snakemake.
"""

from cap.planning.plan import Batch, Plan
from cap.planning.references import ConfigReferenceError, check_references
from cap.planning.steps import Steps
from cap.planning.targets import Run
from cap.planning.variants import Setting

__all__ = ["Batch", "ConfigReferenceError", "Plan", "Run", "Setting", "Steps", "check_references"]
