"""Names from the config that become paths and shell words, checked before anything runs.

A config is shared like code (copied from a colleague, a paper's supplement): a dataset,
backbone, resource, variant, table, figure or category name ends up in file paths under
``results/`` and ``resources/`` and, through them, in the rules' shell commands. Each is
held to :data:`SAFE_NAME` here, at planning, so that no name can run a command, split a
command line or lead a path outside the project; the rules quote every path they put in
a shell command as well (``{input.spec:q}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from cap.utils.errors import ConfigError
from cap.workflow import registry
from cap.workflow.config import Config

#: Letters, digits, ``_``, ``-`` and ``.``; not starting with ``.``, no ``..``: one path
#: component that is neither hidden nor a parent, and one shell word without quoting.
SAFE_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9_.-]*")
#: How :data:`SAFE_NAME` reads in an error message.
SAFE_NAME_RULE = "letters, digits, '_', '-' and '.', not starting with '.' and without '..'"


class UnsafeNameError(ConfigError):
    """A config name that would become an unsafe path or shell word."""


def check_names(config: Config) -> None:
    """Raise :class:`UnsafeNameError` on the first name of ``config`` that is not a
    :data:`SAFE_NAME`, naming the key, the name and where it would have gone; and
    :class:`ConfigError` on a table named like a rule or another output."""
    for where, name, use in _names(config):
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
            raise UnsafeNameError(
                f"{where}: {name!r} is not a safe name ({SAFE_NAME_RULE}): it becomes {use}. "
                "Rename it in the config"
            )
    reserved = registry.reserved_table_names()
    for name in config.tables:
        if name in reserved or name.startswith(registry.FIGURE_TARGET_PREFIX):
            raise ConfigError(
                f"tables.{name}: {name!r} is taken by the workflow (a rule, a target or a file "
                f"of results/tables/: {', '.join(sorted(reserved))}, "
                f"{registry.FIGURE_TARGET_PREFIX}<kind>): rename the table"
            )


def _names(config: Config) -> Iterator[tuple[str, object, str]]:
    """(config key, name, what the name becomes) of every name that reaches a path."""
    for name, resource in config.resources.items():
        yield f"resources.{name}", name, "the folder resources/<name>/ and the fetch job's files"
        yield f"resources.{name}.file", resource.file, "the path resources/<name>/<file>"
    for name in config.backbones:
        yield f"backbones.{name}", name, "a folder of every result path (results/<step>/…)"
    for name, dataset in config.datasets.items():
        yield f"datasets.{name}", name, "a folder of every result path (results/<step>/…)"
        for cls in dataset.classes:
            if not isinstance(cls, int):  # class ids are integers; categories are names
                yield f"datasets.{name}.classes", cls, "a folder of its runs' paths"
    for name in config.variants:
        yield f"variants.{name}", name, "the file name of the figures that draw it"
    for name in config.tables:
        yield f"tables.{name}", name, "the files results/tables/<name>.* and a target rule"
    for kind, figures in config.figures.items():
        for index, figure in enumerate(figures):
            if figure.name is not None:
                yield f"figures.{kind}[{index}].name", figure.name, "the figure's file name"
