"""The config's schema: the static YAML (``workflow/schemas/config.schema.yaml``) with its
detector parts generated, when a config is validated, from each detector's declaration of
its settings (:mod:`cap.detectors.settings`), so that a plugin's method validates as
capbench's own do.

Generated: the method names (every registered one, nothing imported), every setting's
name, and each named method's settings' types and bounds: in ``methods.<method>``,
``datasets.<name>.settings.<method>`` and, by the variant's ``method``, in
``variants.<name>``. Only the methods a config names are loaded. Which method a setting
belongs to, and what JSON cannot state, planning checks (:mod:`cap.planning.variants`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cap.detectors import detector_class, detector_names
from cap.detectors.settings import json_schema
from cap.planning.variants import RUN_PARAMETERS
from cap.utils.io import write_text_atomic

#: The static schema, in the workflow's folder (the Snakefile's).
STATIC = "schemas/config.schema.yaml"


def config_schema(workflow: str | Path, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The :data:`STATIC` schema of the ``workflow`` folder with its detector parts filled
    in for the methods ``config`` names (every registered method when None)."""
    schema = yaml.safe_load((Path(workflow) / STATIC).read_text())
    names = detector_names()
    methods = names if config is None else sorted(set(named_methods(config)) & set(names))
    settings = {method: method_settings(method) for method in methods}
    definitions = schema["definitions"]
    definitions["setting_properties"]["properties"] = _every_setting(settings)
    by_method = definitions["settings_by_method"]
    by_method["propertyNames"] = {"enum": names}
    by_method["properties"] = {
        method: {"$ref": "#/definitions/settings", "properties": properties}
        for method, properties in settings.items()
    }
    variant = schema["properties"]["variants"]["additionalProperties"]
    variant["properties"]["method"]["enum"] = names
    variant["allOf"] = [
        {"if": {"properties": {"method": {"const": method}}}, "then": {"properties": properties}}
        for method, properties in settings.items()
    ]
    return schema


def config_schema_file(workflow: str | Path, config: Mapping[str, Any]) -> str:
    """:func:`config_schema` as a file, for Snakemake's ``validate`` (which reads one):
    YAML (as the static schema, so that the defaults it fills in are plain dicts) in the
    temporary folder, named by its content; a file of that name is used only when it is
    this user's and holds that content, else it is written again."""
    text = yaml.safe_dump(config_schema(workflow, config), sort_keys=False, allow_unicode=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"capbench-config-schema-{os.getuid()}-{digest}.yaml"
    if not (path.is_file() and path.stat().st_uid == os.getuid() and path.read_text() == text):
        write_text_atomic(path, text)
    return str(path)


def method_settings(method: str) -> dict[str, dict[str, Any]]:
    """The JSON schema of each setting of ``method`` (not the run's seed)."""
    declared = detector_class(method).declared_settings
    return {name: json_schema(p) for name, p in declared.items() if name not in RUN_PARAMETERS}


def named_methods(config: Mapping[str, Any]) -> Iterable[str]:
    """The method names a raw config states (variants, methods, datasets' settings)."""

    def mapping(value: Any) -> Mapping[str, Any]:
        return value if isinstance(value, Mapping) else {}

    yield from mapping(config.get("methods"))
    for dataset in mapping(config.get("datasets")).values():
        yield from mapping(mapping(dataset).get("settings"))
    for variant in mapping(config.get("variants")).values():
        method = mapping(variant).get("method")
        if isinstance(method, str):
            yield method


def _every_setting(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Each setting name of the methods, described by the methods that take it."""
    takers: dict[str, list[str]] = {}
    for method, properties in settings.items():
        for name in properties:
            takers.setdefault(name, []).append(method)
    return {
        name: {"description": f"a setting of {', '.join(methods)}"}
        for name, methods in sorted(takers.items())
    }
