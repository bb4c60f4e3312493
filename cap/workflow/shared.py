"""A config file read as data, the way a shared one must be: YAML's safe subset, nothing
evaluated.

Snakemake loads ``--configfile`` files itself, before the workflow's first line runs, and a
file whose top level says ``__use_yte__: true`` is a YTE template whose ``?``-expressions it
evaluates as Python. :func:`read_config_file` reads a file as plain data and refuses such a
template; ``cap check FILE`` runs it with the whole of planning before Snakemake ever sees
the file, and the workflow refuses a template too (once Snakemake has loaded it, so that a
run never goes on from one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from cap.utils.errors import ConfigError

#: The top-level key that makes Snakemake evaluate a config file as a YTE template.
TEMPLATE_KEY = "__use_yte__"


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config in ``path`` (YAML or JSON) as plain data; a template Snakemake would
    evaluate, or a file that is not a mapping, raises :class:`ConfigError` naming it."""
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the config {path}: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(config, dict):
        raise ConfigError(f"{path} holds no mapping of config keys")
    if TEMPLATE_KEY in config:
        raise ConfigError(
            f"{path} sets {TEMPLATE_KEY}: Snakemake would evaluate its ?-expressions as "
            "Python when it loads the file. A config is data: remove the key and its "
            "expressions (this run stops here, but Snakemake has evaluated them already: "
            "check a config you did not write with `cap check FILE` before running it)"
        )
    return config
