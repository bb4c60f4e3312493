"""The config's schema: the static YAML (``workflow/schemas/config.schema.yaml``) with its
detector parts generated, when a config is validated, from each detector's declaration of
its settings (:mod:`cap.detectors.settings`), so that a plugin's method validates as
capbench's own do; and validation against it, as the workflow does it (defaults filled in).

Generated: the dataset loaders and preprocessings (their registries' names), the method
names (every registered one, nothing imported), every setting's
name, and each named method's settings' types and bounds: in ``methods.<method>``,
``datasets.<name>.settings.<method>`` and, by the variant's ``method``, in
``variants.<name>``. Only the methods a config names are loaded. Which method a setting
belongs to, and what JSON cannot state, planning checks (:mod:`cap.workflow.variants`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cap.data import DATASETS
from cap.data.transforms import PREPROCESSINGS
from cap.detectors import detector_class, detector_names
from cap.detectors.settings import json_schema
from cap.utils.errors import ConfigError
from cap.workflow.variants import RUN_PARAMETERS

#: The repository: the workflow's rules and schema, the configs.
REPOSITORY = Path(__file__).resolve().parents[2]
#: The static schema, beside the workflow's rules.
SCHEMA = REPOSITORY / "workflow" / "schemas" / "config.schema.yaml"


def validated(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` validated against :func:`config_schema` (for the methods it names), its
    defaults filled in as Snakemake's ``validate`` fills them; a violation raises
    :class:`ConfigError` naming the key."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import best_match

    def fill_defaults(validator: Any, properties: Mapping, instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, subschema["default"])
        yield from Draft202012Validator.VALIDATORS["properties"](
            validator, properties, instance, schema
        )

    filling = validators.extend(Draft202012Validator, {"properties": fill_defaults})
    error = best_match(filling(config_schema(config)).iter_errors(config))
    if error is not None:
        where = ".".join(map(str, error.absolute_path)) or "the config"
        raise ConfigError(f"{where}: {error.message}")
    return config


def config_schema(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The static schema (:data:`SCHEMA`) with its registries' names filled in (datasets,
    preprocessings, methods) and its detector parts for the methods ``config`` names
    (every registered method when None)."""
    schema = yaml.safe_load(SCHEMA.read_text())
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
    dataset = schema["properties"]["datasets"]["additionalProperties"]["properties"]
    dataset["source"]["enum"] = list(DATASETS)
    dataset["preprocessing"]["enum"] = list(PREPROCESSINGS)
    variant = schema["properties"]["variants"]["additionalProperties"]
    variant["properties"]["method"]["enum"] = names
    variant["allOf"] = [
        {"if": {"properties": {"method": {"const": method}}}, "then": {"properties": properties}}
        for method, properties in settings.items()
    ]
    return schema


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
