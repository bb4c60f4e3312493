"""What one job of the workflow does, as typed specs: written by the planning layer, read
by the ``cap`` command, one JSON file per job.

A rule passes its job's spec file as the command's one argument (``cap evaluate
results/specs/evaluate/....json``), so that nothing is rebuilt as command-line strings
on the way and a job can be re-run by hand from its file. Each spec names its inputs
and outputs; the rule declares the same paths, both taken from the plan.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cap.utils.errors import ConfigError
from cap.utils.io import write_json_atomic

Spec = TypeVar("Spec")


@dataclass(frozen=True)
class FetchJob:
    """Fill one resource under ``resources/``: link a local copy, else download it."""

    destination: str  # the file or folder to create
    local: tuple[str, ...] = ()  # candidate local copies, first found wins
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
    preprocessing: str = "paper"  # resize and crop before the backbone
    limit_per_class: int | None = None  # the first N images of each class
    feature_maps_per_class: int = 0  # also store the maps of the first N images per class
    batch_size: int = 64  # images per forward pass
    bf16: bool = False  # torchvision backbones on a GPU: bfloat16 autocast
    device: str = "auto"  # auto (CUDA when available), cpu or cuda[:N]
    options: dict[str, Any] = field(default_factory=dict)  # backbone options (tflite tensors)
    skip_corrupt: bool = False  # skip unreadable images, counting them, instead of failing
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
    preprocessing: str = "paper"  # how images were resized and cropped


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


def write_spec(path: str | os.PathLike[str], spec: Any) -> None:
    """Write a spec as JSON, atomically."""
    write_json_atomic(path, dataclasses.asdict(spec))


def read_spec(kind: type[Spec], path: str | os.PathLike[str]) -> Spec:
    """A spec of type ``kind`` from its JSON file, naming what is wrong."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read the {kind.__name__} spec {path}: {error}") from error
    return from_dict(kind, payload, where=str(path))


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
