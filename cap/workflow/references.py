"""Cross-references the config's JSON schema cannot express, each error naming the key.

The schema checks each entry's shape; this checks that what one entry names exists
(resources, backbones, datasets, variants, table rows, classes) and that a figure
asks for something its variant has (a model, a training history).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cap.backbones import BACKBONES, backbone_options
from cap.data import DATASETS as DATASET_REGISTRY
from cap.detectors import detector_class
from cap.metrics.image import METRICS
from cap.metrics.localization import PIXEL_METRICS
from cap.utils.errors import ConfigError
from cap.utils.resources import check_package_file
from cap.workflow.config import Backbone, Config, Dataset, Figure, Variant
from cap.workflow.figures import FIGURE_KINDS


class ConfigReferenceError(ConfigError):
    """A config entry naming something the config (or the dataset) does not define."""


def check_references(config: Config) -> None:
    """Raise :class:`ConfigReferenceError` on the first entry naming something undefined."""
    _check_datasets(config)
    for name, resource in config.resources.items():
        if resource.package is not None:
            check_package_file(resource.package, f"resources.{name}.package", resource.instructions)
    for name, backbone in config.backbones.items():
        if backbone.resource is not None:
            _require(backbone.resource, config.resources, f"backbones.{name}.resource")
        _check_backbone_options(name, backbone)
    _check_tables(config)
    _check_claims(config)
    _check_figures(config)


def _check_datasets(config: Config) -> None:
    _require_each(config.only.datasets or (), config.datasets, "only.datasets")
    methods = {variant.method for variant in config.variants.values()}
    _require_each(config.only.methods or (), methods, "only.methods")
    for name, dataset in config.datasets.items():
        _require(dataset.resource, config.resources, f"datasets.{name}.resource")
        _require(dataset.backbone, config.backbones, f"datasets.{name}.backbone")
        _check_classes(name, dataset)
        if dataset.validation_in_bank and "validation_in_bank" not in (
            DATASET_REGISTRY[dataset.source].options
        ):
            raise ConfigReferenceError(
                f"datasets.{name}.validation_in_bank: source {dataset.source!r} has no "
                "validation split (only mvtec3d has)"
            )


def _check_backbone_options(name: str, backbone: Backbone) -> None:
    """A backbone's model must be registered, its options (and ``bf16``) ones it takes."""
    _require(backbone.model, BACKBONES, f"backbones.{name}.model")
    accepted = backbone_options(backbone.model)
    given = [*backbone.options, *(["bf16"] if backbone.bf16 else [])]
    for option in given:
        if option not in accepted:
            raise ConfigReferenceError(
                f"backbones.{name}: model {backbone.model!r} has no option {option!r}; "
                f"its options: {', '.join(sorted(accepted))}"
            )


def _check_tables(config: Config) -> None:
    for name, table in config.tables.items():
        _require_each(table.datasets, config.datasets, f"tables.{name}.datasets")
        for entry in table.entries:
            _require(entry.variant, config.variants, f"tables.{name}.entries")
            _require_each(entry.datasets or (), table.datasets, f"tables.{name}.entries")
        _require(table.metric, (*METRICS, *PIXEL_METRICS), f"tables.{name}.metric")
        if table.paper is not None and table.metric != "auroc":
            raise ConfigReferenceError(
                f"tables.{name}: the paper's {table.paper} reports AUROC, so a table tied "
                f"to it (paper) shows AUROC, not {table.metric}: drop paper or the metric"
            )
        for dataset, classes in table.classes.items():
            _require(dataset, table.datasets, f"tables.{name}.classes")
            known = config.datasets[dataset].classes
            _require_each(classes, known, f"tables.{name}.classes.{dataset}")


def _check_claims(config: Config) -> None:
    for key in ("leaderboard", "concordance"):
        table = getattr(config.report, key)
        if table is not None:
            _require(table, config.tables, f"report.{key}")
    for index, claim in enumerate(config.report.claims):
        where = f"report.claims[{index}]"
        (name,) = claim.tables
        _require(name, config.tables, f"{where}.table")
        table = config.tables[name]
        labels = [entry.label for entry in table.entries]
        _require_each(claim.higher, labels, f"{where}.higher")
        _require_each(claim.lower, labels, f"{where}.lower")
        _require_each(claim.datasets, table.datasets, f"{where}.datasets")
        if claim.versus:
            _require_each(claim.versus, table.datasets, f"{where}.versus")
            if len(claim.versus) != len(claim.datasets):
                raise ConfigReferenceError(
                    f"{where}.versus names {len(claim.versus)} dataset(s) for "
                    f"{len(claim.datasets)} in datasets: give one per dataset"
                )


def _check_figures(config: Config) -> None:
    for kind, figures in config.figures.items():
        for index, figure in enumerate(figures):
            where = f"figures.{kind}[{index}]"
            _require(figure.dataset, config.datasets, f"{where}.dataset")
            drawn = [figure.cls] if figure.cls is not None else (figure.classes or ())
            _require_each(drawn, config.datasets[figure.dataset].classes, f"{where}.cls")
            named = [figure.variant] if figure.variant is not None else []
            named += [variant for curve in figure.curves for variant in curve.variants]
            named += figure.variants
            _require_each(named, config.variants, f"{where}.variant")
            needs = FIGURE_KINDS[kind].needs
            if needs in ("model", "history"):
                _require_trainable(named, config.variants, where, needs)
            if needs == "maps":
                _require_localizing(figure, config, where)


def _require_localizing(figure: Figure, config: Config, where: str) -> None:
    """A figure of anomaly maps needs defect masks to draw them against, and methods that
    score positions."""
    source = config.datasets[figure.dataset].source
    if not DATASET_REGISTRY[source].has_masks:
        raise ConfigReferenceError(
            f"{where} draws anomaly maps against defect masks, but dataset "
            f"{figure.dataset!r} ({source}) has none: pick an MVTec AD or MVTec 3D-AD dataset"
        )
    for name in figure.variants:
        method = config.variants[name].method
        if not detector_class(method).localizes:
            raise ConfigReferenceError(
                f"{where} draws the anomaly maps of variant {name!r}, whose method {method!r} "
                "scores whole images only: pick methods that localize (patchcore, cap, "
                "no_adaptation)"
            )


def _require_trainable(
    names: Iterable[str], variants: Mapping[str, Variant], where: str, needs: str
) -> None:
    """A figure of a model or of a training history draws what training leaves."""
    drawn = "a trained model" if needs == "model" else "a training history"
    for name in names:
        method = variants[name].method
        if not detector_class(method).trainable:
            raise ConfigReferenceError(
                f"{where} draws {drawn} of variant {name!r}, whose method {method!r} learns "
                "nothing: pick a variant of a trainable method (e.g. cap)"
            )


def _check_classes(name: str, dataset: Dataset) -> None:
    """Normal classes must exist in the dataset: ids in range, or known categories."""
    entry = DATASET_REGISTRY[dataset.source]
    where = f"datasets.{name}.classes"
    if entry.per_category:
        _require_each(dataset.classes, entry.classes(None, None), where)
        return
    not_ids = [c for c in dataset.classes if not isinstance(c, int) or c < 0]
    if not_ids:
        raise ConfigReferenceError(f"{where}: {not_ids} are not class ids (integers ≥ 0)")
    if entry.fixed_classes:  # an image folder's classes are known only once it is fetched
        _require_each(dataset.classes, range(len(entry.classes(None, None))), where)


def _require_each(names: Iterable[object], known: Iterable[object], where: str) -> None:
    for name in names:
        _require(name, known, where)


def _require(name: object, known: Iterable[object], where: str) -> None:
    known = list(known)
    if str(name) not in {str(k) for k in known}:
        raise ConfigReferenceError(
            f"{where} refers to {name!r}, which is not defined; valid: {sorted(map(str, known))}"
        )
