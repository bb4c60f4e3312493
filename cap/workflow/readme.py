"""The detector settings table of ``config/README.md``, written from the detectors'
declarations (through their config schema, :mod:`cap.workflow.schema`): ``python -m
cap.workflow.readme`` rewrites it between its markers, and a test fails while the
README's table differs. capbench's own detectors only: a plugin's are its package's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cap.detectors.registry import builtin_names
from cap.utils.errors import ConfigError
from cap.workflow.schema import method_settings
from cap.workflow.variants import detector_defaults

#: The file, from the repository's root, and the markers around its generated table.
README = "config/README.md"
BEGIN = "<!-- detector settings: written by `python -m cap.workflow.readme`; do not edit -->"
END = "<!-- end of the detector settings -->"


def settings_table() -> str:
    """One row per setting of each of capbench's own methods: its values, default and
    meaning."""
    rows = ["| method | setting | values | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for method in builtin_names():
        schemas = method_settings(method)
        cells = [
            (
                f"`{name}`",
                values_text(schemas[name]),
                f"`{_yaml(default)}`",
                schemas[name]["description"],
            )
            for name, default in detector_defaults(method).items()
        ]
        for index, cell in enumerate(cells or [("none", "", "", "")]):
            rows.append("| " + " | ".join((f"`{method}`" if index == 0 else "", *cell)) + " |")
    return "\n".join(rows)


def with_table(text: str) -> str:
    """``text``, the README, with :func:`settings_table` between its markers."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ConfigError(f"{README} lacks the markers of its detector settings: {BEGIN} {END}")
    return f"{head}{BEGIN}\n{settings_table()}\n{END}{tail}"


def values_text(schema: Mapping[str, Any]) -> str:
    """What a setting's JSON schema allows, in words (``integer ≥ 1``)."""
    if "anyOf" in schema:
        return " or ".join(values_text(alternative) for alternative in schema["anyOf"])
    if "enum" in schema:
        return ", ".join(f"`{_yaml(value)}`" for value in schema["enum"])
    bounds = [
        f"{symbol} {_yaml(schema[key])}"
        for key, symbol in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        )
        if key in schema
    ]
    return " ".join([schema.get("type", "any"), ", ".join(bounds)]).strip()


def _yaml(value: Any) -> str:
    """A value as a config states it: a string bare, anything else as JSON (``null``)."""
    return value if isinstance(value, str) else json.dumps(value)


def main(argv: list[str]) -> int:
    """Rewrite the table of the README at ``argv[0]`` (default :data:`README`)."""
    path = Path(argv[0] if argv else README)
    text = path.read_text()
    if with_table(text) != text:
        path.write_text(with_table(text))
        print(f"{path}: detector settings rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
