"""The workflow's config, typed once: frozen dataclasses built from the schema-validated
dict (``workflow/schemas/config.schema.yaml``, which fills the defaults) in one place,
:meth:`Config.from_dict`. Planning reads these, never the raw dict; each field's comment
says what it is, and ``config/README.md`` what it is for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cap.evaluation.jobs import ClaimSpec
from cap.utils.resources import PackageFile

#: A normal class: a class id (one-class protocol) or a category name (MVTec).
ClassId = int | str


@dataclass(frozen=True)
class Only:
    """The ``only`` selection: the runs of these datasets and methods, or all."""

    datasets: tuple[str, ...] | None = None  # None: every dataset
    methods: tuple[str, ...] | None = None  # None: every method

    def keeps(self, dataset: str, method: str) -> bool:
        """Whether the selection keeps runs of ``method`` on ``dataset``."""
        return (self.datasets is None or dataset in self.datasets) and (
            self.methods is None or method in self.methods
        )


@dataclass(frozen=True)
class Resource:
    """An external input filled under ``resources/<name>/`` by the ``fetch`` rule."""

    file: str  # its file or folder name there
    local: tuple[str, ...] = ()  # local copies to link, first found wins
    package: PackageFile | None = None  # or a file an installed distribution ships
    url: str | None = None  # else downloaded from here
    torchvision: str | None = None  # or by torchvision (cifar10, cifar100, fmnist)
    instructions: str | None = None  # how to obtain it by hand


@dataclass(frozen=True)
class Backbone:
    """A feature extractor, by the name used in paths."""

    model: str  # backbone registry name (cap.backbones)
    resource: str | None  # the resource holding its weights; None: the model's own source
    batch_size: int  # images per forward pass
    bf16: bool  # bfloat16 autocast on a GPU
    options: Mapping[str, Any]  # the model's own options


@dataclass(frozen=True)
class Dataset:
    """A benchmark: images, the backbone that embeds them, the normal classes."""

    source: str  # dataset registry name (cap.data)
    resource: str  # the resource holding the images
    backbone: str  # a key of Config.backbones
    classes: tuple[ClassId, ...]  # the normal classes
    limit_per_class: Mapping[str, int | None]  # split → the first N images of each class
    preprocessing: str  # resize and crop before the backbone (cap.data.transforms)
    clip_k: bool  # K larger than the bank uses all of it instead of failing
    skip_corrupt: bool  # skip unreadable images instead of stopping
    validation_in_bank: bool  # MVTec 3D-AD: the validation images join the bank
    feature_maps_per_class: int  # test images per class whose last feature maps are kept
    settings: Mapping[str, Mapping[str, Any]]  # method → its settings on this dataset
    seeds: tuple[int, ...] | None  # the trainable methods' seeds here; None: the config's


@dataclass(frozen=True)
class Variant:
    """A named set of settings of a method."""

    method: str  # registered detector
    settings: Mapping[str, Any]  # its own settings (the rest: layered defaults)
    seeds: tuple[int, ...] | None = None  # its seeds instead of the config's
    bank_size: int | None = None  # the first N normal training images form the bank


@dataclass(frozen=True)
class TableEntry:
    """A row (or column) of a table: a label and the variant filling its cells."""

    label: str
    variant: str
    datasets: tuple[str, ...] | None = None  # the table's datasets it runs on; None: all


@dataclass(frozen=True)
class Table:
    """A table of mean metrics over classes: entries × datasets."""

    title: str
    layout: str  # variants_as_rows or variants_as_columns
    datasets: tuple[str, ...]
    entries: tuple[TableEntry, ...]
    classes: Mapping[str, tuple[ClassId, ...]]  # dataset → the classes covered; default all
    paper: str | None  # the paper's table it reproduces (config/paper_results.yaml)
    reported_rows: bool  # append the paper's reported-only rows
    metric: str  # what the cells show: one of cap.metrics' METRICS or PIXEL_METRICS

    def entry_datasets(self, entry: TableEntry) -> tuple[str, ...]:
        """The datasets ``entry`` runs on."""
        return self.datasets if entry.datasets is None else entry.datasets


@dataclass(frozen=True)
class Curve:
    """One line of a curve figure: its legend label and its variants (one per point)."""

    label: str
    variants: tuple[str, ...]


@dataclass(frozen=True)
class Figure:
    """One configured figure of a kind (:mod:`cap.workflow.figures`): what it draws, which
    planning reads; the fields its kind does not use stay at their defaults, and the
    kind's own (how many images, ...) are its drawing's ``options``."""

    dataset: str
    cls: ClassId | None = None  # the normal class drawn (None: ``classes``)
    variant: str | None = None  # the trained variant drawn (figures of a model)
    variants: tuple[str, ...] = ()  # the variants drawn, one column each
    curves: tuple[Curve, ...] = ()  # the lines, each over variants
    classes: tuple[ClassId, ...] | None = None  # the panels' classes; None: all
    name: str | None = None  # the file name, where the kind names its figures so
    title: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # the kind's own settings


@dataclass(frozen=True)
class Report:
    """The report's settings and the config's own claims."""

    tolerance: float  # AUROC points beyond which a cell is flagged against the paper
    paper_results: str  # the paper's numbers (YAML)
    leaderboard: str | None  # the table whose methods are ranked
    claims: tuple[ClaimSpec, ...]  # the config's own, each on one of its tables
    bootstrap: int  # resamples of the intervals over test images (datasets with masks); 0: none
    concordance: str | None  # the table whose methods' ranking is compared across backbones
    claims_figure: bool  # draw the config's own claims' differences with their intervals


@dataclass(frozen=True)
class Config:
    """The whole validated config."""

    offline: bool
    cache: bool
    only: Only
    keep_models: bool
    seeds: tuple[int, ...]
    resources: Mapping[str, Resource]
    backbones: Mapping[str, Backbone]
    datasets: Mapping[str, Dataset]
    methods: Mapping[str, Mapping[str, Any]]  # method → settings on every dataset
    variants: Mapping[str, Variant]
    tables: Mapping[str, Table]
    figures: Mapping[str, tuple[Figure, ...]]  # kind → its figures, in config order
    report: Report
    raw: Mapping[str, Any] = field(compare=False, repr=False)  # as given, for the report

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Config:
        """The typed config of a schema-validated dict (defaults filled in)."""
        return cls(
            offline=config["offline"],
            cache=config["cache"],
            only=Only(**{key: tuple(value) for key, value in config["only"].items()}),
            keep_models=config["keep_models"],
            seeds=tuple(config["seeds"]),
            resources={name: _resource(entry) for name, entry in config["resources"].items()},
            backbones={name: Backbone(**entry) for name, entry in config["backbones"].items()},
            datasets={
                name: Dataset(
                    **{
                        **entry,
                        "classes": tuple(entry["classes"]),
                        "seeds": None if entry["seeds"] is None else tuple(entry["seeds"]),
                    }
                )
                for name, entry in config["datasets"].items()
            },
            methods=dict(config["methods"]),
            variants={name: _variant(entry) for name, entry in config["variants"].items()},
            tables={name: _table(entry) for name, entry in config["tables"].items()},
            figures={
                kind: tuple(_figure(entry) for entry in entries)
                for kind, entries in config["figures"].items()
            },
            report=Report(
                tolerance=config["report"]["tolerance"],
                paper_results=config["report"]["paper_results"],
                leaderboard=config["report"]["leaderboard"],
                claims=tuple(_claim(claim) for claim in config["report"]["claims"]),
                bootstrap=config["report"]["bootstrap"],
                concordance=config["report"]["concordance"],
                claims_figure=config["report"]["claims_figure"],
            ),
            raw=config,
        )


def _resource(entry: Mapping[str, Any]) -> Resource:
    package = entry["package"]
    return Resource(
        **{
            **entry,
            "local": tuple(entry["local"]),
            "package": None if package is None else PackageFile(**package),
        }
    )


#: A variant's keys that are not settings of its method's detector.
VARIANT_KEYS: frozenset[str] = frozenset({"method", "seeds", "bank_size"})


def _variant(entry: Mapping[str, Any]) -> Variant:
    seeds = entry.get("seeds")
    return Variant(
        method=entry["method"],
        settings={key: value for key, value in entry.items() if key not in VARIANT_KEYS},
        seeds=None if seeds is None else tuple(seeds),
        bank_size=entry.get("bank_size"),
    )


def _table(entry: Mapping[str, Any]) -> Table:
    return Table(
        title=entry["title"],
        layout=entry["layout"],
        datasets=tuple(entry["datasets"]),
        entries=tuple(
            TableEntry(
                label=row["label"],
                variant=row["variant"],
                datasets=tuple(row["datasets"]) if "datasets" in row else None,
            )
            for row in entry["entries"]
        ),
        classes={dataset: tuple(ids) for dataset, ids in entry["classes"].items()},
        paper=entry["paper"],
        reported_rows=entry["reported_rows"],
        metric=entry["metric"],
    )


#: The fields of a figure entry that planning reads; the others are its kind's options.
FIGURE_FIELDS: frozenset[str] = frozenset(
    {"dataset", "cls", "variant", "variants", "curves", "classes", "name", "title"}
)


def _figure(entry: Mapping[str, Any]) -> Figure:
    curves = tuple(
        Curve(label=curve["label"], variants=tuple(curve.get("variants", [curve.get("variant")])))
        for curve in entry.get("curves", [])
    )
    classes = entry.get("classes")
    return Figure(
        **{
            key: entry[key]
            for key in ("dataset", "cls", "variant", "name", "title")
            if key in entry
        },
        variants=tuple(entry.get("variants", ())),
        curves=curves,
        classes=None if classes is None else tuple(classes),
        options={key: value for key, value in entry.items() if key not in FIGURE_FIELDS},
    )


def _claim(entry: Mapping[str, Any]) -> ClaimSpec:
    def side(value: str | list[str]) -> tuple[str, ...]:
        return (value,) if isinstance(value, str) else tuple(value)

    return ClaimSpec(
        text=entry["text"],
        tables=(entry["table"],),
        higher=side(entry["higher"]),
        lower=side(entry["lower"]),
        datasets=tuple(entry["datasets"]),
        versus=tuple(entry.get("versus", ())),
        pooled=entry.get("pooled", False),
    )
