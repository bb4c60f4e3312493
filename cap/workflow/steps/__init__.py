"""The `cap` steps of the workflow, one module each, found here: a module that declares a
:class:`~cap.workflow.steps.base.Step` as ``STEP`` is a step (its rule file under
``workflow/rules/`` runs ``cap <name> SPEC``)."""

from __future__ import annotations

import importlib
import pkgutil

from cap.workflow.steps.base import Step, Steps


def _declared() -> tuple[Step, ...]:
    modules = (
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if info.name != "base"
    )
    return tuple(sorted((module.STEP for module in modules), key=lambda step: step.stage))


#: Every step, in the order of the pipeline.
STEPS: tuple[Step, ...] = _declared()
#: Each step by name.
STEP: dict[str, Step] = {step.name: step for step in STEPS}

__all__ = ["STEP", "STEPS", "Step", "Steps"]
