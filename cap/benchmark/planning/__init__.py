"""Planning the workflow from its config: runs, batches, targets and each job's spec.

``Plan`` decides (which runs, in which batches, for which targets); ``Steps`` turns its
decisions into the typed spec of each ``cap`` job. Both are pure functions of the
validated config, without Snakemake.
"""

from cap.benchmark.planning.plan import Batch, Plan
from cap.benchmark.planning.references import ConfigReferenceError, check_references
from cap.benchmark.planning.steps import Steps
from cap.benchmark.planning.targets import Run
from cap.benchmark.planning.variants import Setting

__all__ = ["Batch", "ConfigReferenceError", "Plan", "Run", "Setting", "Steps", "check_references"]
