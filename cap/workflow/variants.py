"""Variants resolved to what their runs compute, named by content.

A *variant* is a named set of settings of a method. On a dataset it resolves to a
:class:`Setting`: every setting of the method's detector, layered as the detector's
own defaults ← the config's ``methods`` ← the dataset's ``settings`` ← the variant's,
and the bank it fits on. A setting is named by a content key (``cap-1f3a9c02b7``), so
that the files of its runs do not depend on what the variants are called, in which
order the config lists them, or which tables need them: variants that resolve to the
same setting share its runs, and re-saving or extending a config leaves every existing
run where it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cap.detectors import detector_class
from cap.detectors.settings import check_values
from cap.evaluation.jobs import setting_key
from cap.utils.errors import ConfigError
from cap.workflow.config import Config

#: The seed is the run's, not the setting's.
RUN_PARAMETERS: frozenset[str] = frozenset({"seed"})


@dataclass(frozen=True)
class Setting:
    """A variant resolved on a dataset: a method, all its settings and the bank."""

    method: str  # registered detector
    bank: str  # "all" normal training images, or the first N
    settings: dict[str, Any] = field(compare=False, hash=False)  # every setting but the seed
    key: str = field(init=False)  # content key: method and a digest of settings and bank

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", setting_key(self.method, self.settings, self.bank))

    @property
    def trainable(self) -> bool:
        """Whether the method learns parameters (its runs have seeds and models)."""
        return detector_class(self.method).trainable

    @property
    def reads_patches(self) -> bool:
        """Whether the method reads the backbone's patch layers (PatchCore)."""
        return detector_class(self.method).reads_patches


class Variants:
    """Every variant of a config resolved on every dataset, with names and seeds."""

    def __init__(self, config: Config) -> None:
        check_setting_layers(config)
        self.config = config
        self.names: list[str] = list(config.variants)
        self.seeds: list[int] = list(config.seeds)
        self._settings = {
            (dataset, name): self._resolve(dataset, name)
            for dataset in config.datasets
            for name in self.names
        }
        self._by_key: dict[tuple[str, str], Setting] = {}
        self._labels: dict[tuple[str, str], str] = {}
        for (dataset, name), setting in self._settings.items():  # config order: first wins
            self._by_key.setdefault((dataset, setting.key), setting)
            self._labels.setdefault((dataset, setting.key), name)

    def setting(self, dataset: str, variant: str) -> Setting:
        """What ``variant`` computes on ``dataset``."""
        return self._settings[dataset, variant]

    def of_key(self, dataset: str, key: str) -> Setting:
        """The setting behind a content key on ``dataset``."""
        return self._by_key[dataset, key]

    def label(self, dataset: str, key: str) -> str:
        """The name a setting's runs carry in tables: the first variant (config order)
        that resolves to it."""
        return self._labels[dataset, key]

    def seeds_of(self, dataset: str, key: str) -> list[int]:
        """A setting's seeds: those of every variant resolving to it (its own ``seeds``,
        else the dataset's, else the config's), increasing. Deterministic methods run once,
        with the config's smallest seed."""
        if not self.of_key(dataset, key).trainable:
            return [min(self.seeds)]
        default = self.config.datasets[dataset].seeds or self.seeds
        return sorted(
            {
                seed
                for name, variant in self.config.variants.items()
                if self.setting(dataset, name).key == key
                for seed in variant.seeds or default
            }
        )

    def _resolve(self, dataset: str, name: str) -> Setting:
        variant = self.config.variants[name]
        settings = detector_defaults(variant.method)
        settings.update(self.config.methods.get(variant.method, {}))
        settings.update(self.config.datasets[dataset].settings.get(variant.method, {}))
        settings.update(variant.settings)
        bank = "all" if variant.bank_size is None else str(variant.bank_size)
        return Setting(variant.method, bank, settings)


def check_setting_layers(config: Config) -> None:
    """Check every layer of settings the config states (:func:`check_settings`), each
    error naming its key."""
    for method, settings in config.methods.items():
        check_settings(method, settings, f"methods.{method}")
    for name, dataset in config.datasets.items():
        for method, settings in dataset.settings.items():
            check_settings(method, settings, f"datasets.{name}.settings.{method}")
    for name, variant in config.variants.items():
        check_settings(variant.method, variant.settings, f"variants.{name}")


def check_settings(method: str, settings: Mapping[str, Any], where: str) -> None:
    """Each of ``settings`` must be a setting of ``method``'s detector, every number in it
    finite (NaN passes bounds: YAML's ``.nan``, ``.inf``), and each value one its detector
    declares (scikit-learn's validation: the schema states what JSON can of it)."""
    own = detector_defaults(method)
    for name, value in settings.items():
        if name not in own:
            raise ConfigError(
                f"{where}.{name}: {name!r} is not a setting of method {method!r}; "
                f"its settings: {', '.join(own)}"
            )
        if not _finite(value):
            raise ConfigError(f"{where}.{name} is {value!r}: settings must be finite numbers")
    check_values(detector_class(method).declared_settings, settings, where)


def _finite(value: Any) -> bool:
    """Whether every float in ``value`` (nested lists and mappings too) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(item) for item in value)
    return True


def detector_defaults(method: str) -> dict[str, Any]:
    """The keyword defaults of a method's detector, but the run's own (the seed)."""
    defaults = detector_class(method).default_params()
    return {name: value for name, value in defaults.items() if name not in RUN_PARAMETERS}
