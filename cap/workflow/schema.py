"""The config's JSON schema (``workflow/schemas/config.schema.yaml``) and validation against
it, as the workflow does it (defaults filled in)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

#: The repository: the workflow's rules and schema, the configs.
REPOSITORY = Path(__file__).resolve().parents[2]
#: The schema file, beside the workflow's rules.
SCHEMA = REPOSITORY / "workflow" / "schemas" / "config.schema.yaml"


@cache
def _static_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text())


def config_schema() -> dict[str, Any]:
    """The config's schema."""
    return _static_schema()


def validated(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` validated against :func:`config_schema`, its defaults filled in; a
    violation raises :class:`ConfigError` naming the key."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from cap.utils.errors import ConfigError

    try:
        validate(config, str(SCHEMA))
    except WorkflowError as error:
        raise ConfigError(_violation(error)) from error
    return config


def _violation(error: Exception) -> str:
    """Where a config breaks the schema and how, from Snakemake's error (which wraps
    jsonschema's), in one line."""
    from jsonschema import ValidationError

    found = error.__context__
    if not isinstance(found, ValidationError):
        return str(error).splitlines()[0]
    where = ".".join(map(str, found.absolute_path)) or "the config"
    return f"{where}: {found.message}"
