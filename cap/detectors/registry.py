"""The registry of detectors, by method name: capbench's own and every installed plugin's.

A class is registered by one path, :func:`cap.detectors.base.register`. capbench's own
detectors name their method in their class statement (``class DN2Detector(...,
name="dn2")``), which registers the class when its module is imported; an installed
distribution declares ``name = module:Class`` under the entry-point group :data:`GROUP`,
and that class is registered (a scikit-learn-style estimator adapted first,
:mod:`cap.detectors.sklearn_adapter`) when a method of that name is asked for. Listing
the methods imports nothing: capbench's own names are read from its modules' sources, as
a plugin's are from its distribution's metadata; a module is imported when its method is
first asked for. A config only *names* a method: the module imported is the one the name
is registered with, never a string of the config.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from cap.detectors.base import METHOD_PATTERN, REGISTERED, BaseDetector, register
from cap.utils.errors import ConfigError

#: The entry-point group through which an installed distribution adds detectors.
GROUP = "capbench.detectors"


def detector_names() -> list[str]:
    """Every method that can be asked for, sorted: capbench's own and each installed
    plugin's (nothing is imported)."""
    return sorted({*_builtin_modules(), *REGISTERED, *_plugins()})


def builtin_names() -> list[str]:
    """capbench's own methods, sorted (the settings tables of ``config/README.md``)."""
    return sorted(_builtin_modules())


def detector_class(method: str) -> type[BaseDetector]:
    """The class registered as ``method``, its module imported on first use."""
    if method not in REGISTERED:
        if method in _builtin_modules():
            importlib.import_module(_builtin_modules()[method])
        elif method in _plugins():
            _load(_plugins()[method])
        else:
            raise ConfigError(f"unknown method {method!r}; valid: {', '.join(detector_names())}")
    return REGISTERED[method]


def make_detector(method: str, **params: Any) -> BaseDetector:
    """Build the detector registered as ``method`` with settings ``params``."""
    cls = detector_class(method)
    valid = list(cls.default_params())
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"method {method!r} has no setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return cls(**params)


class Registry(Mapping[str, type[BaseDetector]]):
    """The registry as a read-only mapping, method name → class (classes load on access)."""

    def __getitem__(self, method: str) -> type[BaseDetector]:
        if method not in self:
            raise KeyError(method)
        return detector_class(method)

    def __contains__(self, method: object) -> bool:
        return method in detector_names()

    def __iter__(self) -> Iterator[str]:
        return iter(detector_names())

    def __len__(self) -> int:
        return len(detector_names())


#: Every registered detector by method name.
DETECTORS = Registry()


@cache
def _builtin_modules() -> dict[str, str]:
    """Method → module of each class of this package that names its method in its class
    statement (``name="..."``), read from the sources."""
    package = Path(__file__).parent
    found = {}
    for module in pkgutil.iter_modules([str(package)]):
        tree = ast.parse((package / f"{module.name}.py").read_text())
        for node in tree.body:
            for keyword in node.keywords if isinstance(node, ast.ClassDef) else ():
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    found[keyword.value.value] = f"{__package__}.{module.name}"
    return found


def _plugins() -> dict[str, EntryPoint]:
    """Method → entry point of each installed plugin; a name taken twice, or one that
    cannot name files, is refused."""
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=GROUP):
        if not re.fullmatch(METHOD_PATTERN, entry_point.name):
            raise ConfigError(
                f"{_describe(entry_point)}: a method name must match {METHOD_PATTERN}"
            )
        if entry_point.name in _builtin_modules() or entry_point.name in found:
            raise ConfigError(
                f"{_describe(entry_point)} takes the method name {entry_point.name!r}, "
                "which is already capbench's or another plugin's: rename one"
            )
        found[entry_point.name] = entry_point
    return found


def _load(entry_point: EntryPoint) -> None:
    """Register the class an entry point names, adapting a scikit-learn-style estimator."""
    from cap.detectors.sklearn_adapter import adapt, is_outlier_detector

    try:
        loaded = entry_point.load()
    except ImportError as error:
        raise ConfigError(f"{_describe(entry_point)} cannot be imported: {error}") from error
    if isinstance(loaded, type) and issubclass(loaded, BaseDetector):
        register(entry_point.name, loaded)
    elif is_outlier_detector(loaded):
        adapt(loaded, entry_point.name)
    else:
        raise ConfigError(
            f"{_describe(entry_point)} is neither a capbench BaseDetector nor a "
            "scikit-learn-style outlier detector class (get_params, fit, score_samples)"
        )


def _describe(entry_point: EntryPoint) -> str:
    distribution = entry_point.dist.name if entry_point.dist is not None else "?"
    return f"entry point {entry_point.name} = {entry_point.value} ({distribution}, {GROUP})"
