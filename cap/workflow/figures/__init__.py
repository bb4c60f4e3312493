"""The figure kinds of the workflow, one module each, found here: a module that declares a
:class:`~cap.workflow.figures.base.FigureKind` as ``KIND`` is a kind (``figures.<name>``
in a config, drawn by ``workflow/scripts/figure.py``)."""

from __future__ import annotations

import importlib
import pkgutil

from cap.workflow.figures.base import NEEDS, FigureKind


def _declared() -> dict[str, FigureKind]:
    modules = (
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if info.name != "base"
    )
    return {kind.name: kind for kind in (module.KIND for module in modules)}


#: Every figure kind by name.
FIGURE_KINDS: dict[str, FigureKind] = _declared()
#: Figure formats: PNG for the report, PDF for papers.
FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf")

__all__ = ["FIGURE_FORMATS", "FIGURE_KINDS", "NEEDS", "FigureKind"]
