"""What one job of the workflow does, as typed specs: written by the planning layer, read
by the ``cap`` command, one JSON file per job.

A rule passes its job's spec file as the command's one argument (``cap evaluate
results/specs/evaluate/....json``), so that nothing is rebuilt as command-line strings
on the way and a job can be re-run by hand from its file. Each spec names its inputs
and outputs; the rule declares the same paths, both taken from the plan.

A spec file holds the fields that differ from their defaults (:func:`spec_data`) and its
own sha256 (``"sha256"``): one changed by hand afterwards, or stripped of its sha256, is
refused, where the workflow plans (naming the field that differs from the plan) and
where a job reads it, so that edited settings never mix into runs named for others.
Each run of a spec carries its setting's content key (:func:`setting_key`), which a
job recomputes from the run's method, settings and bank.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cap.data.transforms import DEFAULT_PREPROCESSING
from cap.detectors.base import METHOD_PATTERN
from cap.utils.errors import ConfigError
from cap.utils.io import seal, unseal, write_json_atomic
from cap.utils.resources import PackageFile

Spec = TypeVar("Spec")


@dataclass(frozen=True)
class FetchJob:
    """Fill one resource under ``resources/``: link a local copy, else download it."""

    destination: str  # the file or folder to create
    local: tuple[str, ...] = ()  # candidate local copies, first found wins
    package: PackageFile | None = None  # or: a file an installed distribution ships
    url: str | None = None  # public download URL
    torchvision: str | None = None  # or: let torchvision download this dataset
    instructions: str | None = None  # how to obtain it by hand, shown when it is missing
    offline: bool = False  # never download


@dataclass(frozen=True)
class EmbedJob:
    """Backbone features of one dataset split, to HDF5."""

    dataset: str  # cap dataset loader (cifar10, fmnist, imagefolder, ...)
    data_root: str  # the images (folder or .zip)
    split: str  # train or test
    backbone: str  # cap backbone registry name
    out: str  # the .h5 file to write
    weights: str | None = None  # local checkpoint (tflite: the model file)
    category: str | None = None  # MVTec AD category
    preprocessing: str = DEFAULT_PREPROCESSING  # resize and crop before the backbone
    limit_per_class: int | None = None  # the first N images of each class
    feature_maps_per_class: int = 0  # also store the maps of the first N images per class
    patch_maps: bool = False  # also store every image's maps of the backbone's patch_layers
    batch_size: int = 64  # images per forward pass
    bf16: bool = False  # torchvision backbones on a GPU: bfloat16 autocast
    device: str = "auto"  # auto (CUDA when available), cpu or cuda[:N]
    options: dict[str, Any] = field(default_factory=dict)  # backbone options (tflite tensors)
    skip_corrupt: bool = False  # skip unreadable images, counting them, instead of failing
    validation_in_bank: bool = False  # MVTec 3D-AD: its validation images join the train split
    inputs_version: str = ""  # images' and weights' names, sizes, times: a change re-embeds
    offline: bool = False  # never download


@dataclass(frozen=True)
class TaskSpec:
    """Which features a job reads: the normal class's bank and the whole test split."""

    train_embeddings: str  # train-split HDF5
    test_embeddings: str  # test-split HDF5
    normal_class: int | None  # class id; None where the train split is all normal (MVTec)
    backbone: str | None = None  # refuse embeddings of another backbone model
    bank_size: int | None = None  # the first N normal training images only


@dataclass(frozen=True)
class NeighborsJob:
    """The bank's and the test split's k_max nearest normal neighbours, searched once."""

    task: TaskSpec
    k_max: int  # neighbours to search; every K up to it slices them
    out: str  # the .h5 file to write
    clip_k: bool = False  # lower k_max to the bank size − 1 where it exceeds it


@dataclass(frozen=True)
class RunSpec:
    """One run: a method with its settings and a seed, fitted on the job's split."""

    setting: str  # content key of (method, settings, bank): names the run in every file
    method: str  # registered detector
    settings: dict[str, Any]  # every setting of the detector but its seed
    seed: int
    monitor: bool = False  # score the test split after every epoch (score curves)
    model: str | None = None  # its kept model, loaded when the run is not in the cache


@dataclass(frozen=True)
class Identity:
    """What a run's records say it was run on."""

    dataset: str  # the config's dataset name
    backbone: str  # the config's backbone name
    cls: str  # class id, or MVTec category


@dataclass(frozen=True)
class TrainJob:
    """Fit one trainable run and keep its model (for the figures that draw it)."""

    task: TaskSpec
    neighbors: str  # from the neighbours job of the split's bank
    run: RunSpec
    model: str  # the model file to write
    cache: str | None = None  # run cache folder (None: no cache)
    clip_k: bool = False  # lower K to the neighbours available


@dataclass(frozen=True)
class EvaluateJob:
    """Fit (or find in the cache) and score every run of one class and bank."""

    task: TaskSpec
    neighbors: str
    runs: tuple[RunSpec, ...]
    identity: Identity
    records: str  # the records file to write (JSON)
    scores: str  # the scores file to write (gzipped CSV)
    cache: str | None = None  # run cache folder (None: no cache)
    clip_k: bool = False  # lower K to the neighbours available
    maps: str | None = None  # the maps file to write (.npz), where the test split has masks


@dataclass(frozen=True)
class ClaimSpec:
    """A claim on rows of our tables: row ``higher`` scores above row ``lower``."""

    text: str  # the claim as stated, with its source
    tables: tuple[str, ...]  # our tables whose rows it compares
    higher: tuple[str, ...]  # a row label, or two: the first minus the second
    lower: tuple[str, ...]
    datasets: tuple[str, ...]  # where it is made
    versus: tuple[str, ...] = ()  # per dataset, where the lower side is read (default: there)
    pooled: bool = False  # also judged on the mean over its datasets, class by class

    def pairs(self) -> list[tuple[str, str]]:
        """(dataset of the higher side, dataset of the lower side), one per judgement."""
        return list(zip(self.datasets, self.versus or self.datasets, strict=True))


@dataclass(frozen=True)
class ClaimsJob:
    """Judge the paper's claims on our tables that reproduce its tables, and the config's."""

    paper_results: str  # the paper's numbers and claims (YAML)
    paper_tables: dict[str, str | None]  # our table → the paper's table it reproduces
    table_classes: dict[str, dict[str, list[int | str]]]  # table → dataset → its classes
    claims: tuple[ClaimSpec, ...] = ()  # the config's own


@dataclass(frozen=True)
class ReportJob:
    """Write the reproduction report of one config's run."""

    paper_results: str  # the paper's numbers (YAML)
    tolerance: float  # AUROC points beyond which a cell is flagged against the paper
    backbones: dict[str, list[str]]  # dataset → [the config's backbone name, its model]
    classes: dict[str, list[str]]  # dataset → its class ids (this config's jobs' files ...
    tables: list[str]  # ... under results/ are those of its datasets, classes, tables ...
    resources: list[str]  # ... and resources; other configs' files there are not its)
    config: dict[str, Any]  # the config as given, shown in the report

    def owns(self, wildcards: Mapping[str, str]) -> bool:
        """Whether the job behind a log's or benchmark file's ``wildcards`` is this
        config's: its dataset (with its backbone), class, table or resource."""
        dataset = wildcards.get("dataset")
        if dataset is not None:
            if dataset not in self.backbones or wildcards.get("backbone") not in (
                None,
                self.backbones[dataset][0],
            ):
                return False
            if "cls" in wildcards and wildcards["cls"] not in self.classes[dataset]:
                return False
        if "table" in wildcards and wildcards["table"] not in self.tables:
            return False
        return "resource" not in wildcards or wildcards["resource"] in self.resources


#: Hex digits of a setting key's digest, and the key's pattern (the workflow's wildcard).
KEY_DIGITS = 10
KEY_PATTERN = rf"{METHOD_PATTERN}-[0-9a-f]{{{KEY_DIGITS}}}"


def setting_key(method: str, settings: dict[str, Any], bank: str) -> str:
    """The content key of a setting: its method and a digest of its settings and bank
    (``"all"`` or the bank size N), e.g. ``cap-1f3a9c02b7``."""
    payload = json.dumps({"method": method, "settings": settings, "bank": bank}, sort_keys=True)
    return f"{method}-{hashlib.sha256(payload.encode()).hexdigest()[:KEY_DIGITS]}"


def spec_data(spec: Any) -> dict[str, Any]:
    """A spec as plain data, as its file holds it: nested specs as objects, tuples as lists,
    and only the fields that differ from their defaults, so that a field added to a spec
    type later (with a default) leaves every spec written before as it was, and its job
    does not run again."""
    return json.loads(json.dumps(_explicit_fields(spec)))


def _explicit_fields(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _explicit_fields(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if not _is_default(field, getattr(value, field.name))
        }
    if isinstance(value, list | tuple):
        return [_explicit_fields(item) for item in value]
    return value


def _is_default(field: dataclasses.Field, value: Any) -> bool:
    if field.default is not dataclasses.MISSING:
        return value == field.default and type(value) is type(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return value == field.default_factory()
    return False


def write_spec(path: str | os.PathLike[str], spec: Any) -> None:
    """Write a spec (:func:`spec_data`) as JSON with its sha256, atomically."""
    write_spec_data(path, spec_data(spec))


def write_spec_data(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write a spec's data (:func:`spec_data`) as JSON with its sha256, atomically."""
    write_json_atomic(path, seal(data))


def read_spec(kind: type[Spec], path: str | os.PathLike[str]) -> Spec:
    """A spec of type ``kind`` from its JSON file, naming what is wrong; a file changed
    since the workflow wrote it, or without its sha256, is refused (:func:`write_spec`
    writes one by hand)."""
    payload = _read_payload(kind.__name__, path)
    if isinstance(payload, dict):
        payload, problem = unseal(payload)
        if problem is not None:
            raise ConfigError(
                f"{path} {problem}: a job runs the spec its plan wrote. Delete the file to let "
                "the workflow write it again; for other settings, add a variant to the config "
                "(a spec written by hand needs its sha256: cap.evaluation.jobs.write_spec)"
            )
    return from_dict(kind, payload, where=str(path))


def check_unedited(path: str | os.PathLike[str], planned: dict[str, Any]) -> None:
    """Refuse a spec file changed by hand since the workflow wrote it (or stripped of its
    sha256), naming the first field where it differs from ``planned`` (:func:`spec_data`
    of the plan's spec).

    Where the file is unchanged but differs from the plan, the config changed: its rule
    writes it again. A missing file is fine."""
    if not Path(path).is_file():
        return
    payload = _read_payload("spec", path)
    if not isinstance(payload, dict):
        return  # not a spec: its job's command names what is wrong
    found, problem = unseal(payload)
    if problem is not None:
        where = first_difference(found, planned) or "no field differs from the plan"
        raise ConfigError(
            f"{path} {problem} ({where}): a job runs the spec its plan writes. Delete the "
            "file to let the workflow write it again; for other settings, add a variant to "
            "the config"
        )


def first_difference(found: Any, planned: Any, where: str = "") -> str | None:
    """The first place where ``found`` differs from ``planned`` (``runs[3].settings.k: 2
    in the file, 4 in the plan``), or None."""
    if isinstance(found, dict) and isinstance(planned, dict):
        for key in sorted(set(found) | set(planned)):
            inner = f"{where}.{key}" if where else key
            if key not in found or key not in planned:
                side = "the file" if key in found else "the plan"
                return f"{inner}: only in {side}"
            difference = first_difference(found[key], planned[key], inner)
            if difference is not None:
                return difference
        return None
    if isinstance(found, list) and isinstance(planned, list) and len(found) == len(planned):
        for index, (mine, theirs) in enumerate(zip(found, planned, strict=True)):
            difference = first_difference(mine, theirs, f"{where}[{index}]")
            if difference is not None:
                return difference
        return None
    if found == planned and type(found) is type(planned):
        return None
    return f"{where}: {found!r} in the file, {planned!r} in the plan"


def check_run_keys(runs: tuple[RunSpec, ...], task: TaskSpec, where: str) -> None:
    """Refuse a run whose method, settings and bank are not the setting its key names."""
    bank = "all" if task.bank_size is None else str(task.bank_size)
    for index, run in enumerate(runs):
        key = setting_key(run.method, run.settings, bank)
        if key != run.setting:
            raise ConfigError(
                f"{where}: runs[{index}] is named setting {run.setting!r}, but its method, "
                f"settings and bank ({bank}) are setting {key!r}: its settings were changed "
                "after the plan named it. Let the workflow write the spec again; for other "
                "settings, add a variant to the config"
            )


def _read_payload(kind: str, path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read the {kind} spec {path}: {error}") from error


def from_dict(kind: type[Spec], payload: Any, *, where: str) -> Spec:
    """Build dataclass ``kind`` from JSON-like data, converting nested specs and tuples."""
    if not isinstance(payload, dict):
        raise ConfigError(f"{where}: a {kind.__name__} must be an object, got {payload!r}")
    hints = typing.get_type_hints(kind)
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(payload) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: {kind.__name__} has no field(s) {unknown}")
    missing = [
        name
        for name, f in fields.items()
        if name not in payload
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: {kind.__name__} lacks field(s) {missing}")
    values = {
        name: _convert(hints[name], value, where=f"{where}: {kind.__name__}.{name}")
        for name, value in payload.items()
    }
    return kind(**values)


def describe(kind: type, indent: str = "") -> str:
    """The fields of a spec with their comments (nested specs below theirs), for ``--help``."""
    import inspect

    source = inspect.getsource(kind)
    hints = typing.get_type_hints(kind)
    lines = [f"{indent}{kind.__name__}: {(kind.__doc__ or '').strip()}"]
    for f in dataclasses.fields(kind):
        comment = next(
            (
                line.split("#", 1)[1].strip()
                for line in source.splitlines()
                if line.strip().startswith(f"{f.name}:") and "#" in line
            ),
            "",
        )
        lines.append(f"{indent}  {f.name}: {comment}".rstrip(": "))
        hint = hints[f.name]
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
        if dataclasses.is_dataclass(inner):
            lines.append(describe(inner, indent + "    "))
    return "\n".join(lines)


def _convert(hint: Any, value: Any, *, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        return None if value is None else _convert(options[0], value, where=where)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, element, where=where) for element in value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return value
