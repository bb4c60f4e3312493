"""The embedding store: one HDF5 file per (dataset, backbone, split).

Extracted once and shared by every normal class and every ablation. Layout:

- ``features`` (N, D) float32 — pooled backbone features, the memory items of §3.1
- ``labels`` (N,) int64 — in the dataset's class space (CIFAR-100: coarse ids;
  MVTec: 0 = good, 1 = defect)
- ``ids`` (N,) str — lets later steps reload the exact image (``dataset.index_of``)
- ``defect_type`` (N,) str — MVTec only
- ``feature_maps`` (n, 7, 7, D) float16 and ``feature_map_ids`` (n,) str — the last
  feature maps of the first few images of each class, for the anomaly-map figure
- ``skipped_ids`` (s,) str — corrupt images skipped on request
- ``masks`` (N, S, S) bool — the test images' defect masks aligned with the backbone's
  input (datasets with masks: MVTec AD, MVTec 3D-AD)
- ``patch_maps/<l>`` (N, h_l, w_l, C_l) float16 — every image's maps of the backbone's
  ``patch_layers`` (attribute ``patch_layers``), only where a patch-level method reads them

Attributes: ``dataset``, ``split``, ``category``, ``backbone``, ``weights``,
``preprocessing`` (a key of ``cap.data.transforms.PREPROCESSINGS``: ``paper``,
``torchvision``, ``direct``), ``input_description`` (the backbone's transform and input
normalisation in words), ``runtime`` (torch backbones: ``torch`` or ``onnxruntime``, what
ran the network; absent for the others and in files of earlier versions), ``image_count``,
``dim``, ``package_version``, ``class_names`` (JSON list), ``limit_per_class`` (0 = all),
``skipped_count``, ``inputs_version`` (of the images and weights, where the workflow
embedded them). This provenance, not the config, is what every later step reads about how
the features were made.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cap import __version__
from cap.data.transforms import DEFAULT_PREPROCESSING, PREPROCESSINGS
from cap.utils.errors import ConfigError, DataError, MissingResourceError
from cap.utils.io import atomic_path

if TYPE_CHECKING:  # loading embeddings must not pay for importing the backbones (torch)
    from cap.backbones.base import Backbone, Encoded
    from cap.data.base import ImageDataset

log = logging.getLogger(__name__)

REQUIRED_DATASETS: tuple[str, ...] = ("features", "labels", "ids")


@dataclass
class Embeddings:
    """Everything one embedding file holds (see the module docstring)."""

    features: np.ndarray  # (N, D) float32 pooled features
    labels: np.ndarray  # (N,) int64 class index into class_names
    ids: list[str]  # (N,) image ids, as in the dataset
    class_names: list[str]  # the dataset's class space
    attrs: dict[str, Any]  # provenance attributes (dataset, backbone, weights, ...)
    feature_maps: np.ndarray | None = None  # (n, 7, 7, D) float16 last feature maps
    feature_map_ids: list[str] = field(default_factory=list)  # (n,) ids of those images
    defect_type: list[str] | None = None  # (N,) MVTec defect folder names, else None
    masks: np.ndarray | None = None  # (N, S, S) bool defect masks at the backbone's input
    patch_maps: tuple[np.ndarray, ...] = ()  # per patch layer: (N, h_l, w_l, C_l) float16


def first_per_class(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Positions of the first ``limit`` items of each class, in their original order.

    Parameters
    ----------
    labels : ndarray of shape (N,)
    limit : int or None
        None keeps everything.

    Returns
    -------
    ndarray of shape (M,), int64, increasing
    """
    labels = np.asarray(labels)
    if limit is None:
        return np.arange(len(labels), dtype=np.int64)
    keep = [np.flatnonzero(labels == label)[:limit] for label in np.unique(labels)]
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.empty(0, dtype=np.int64)


class _BackboneInputs:
    """Map-style dataset for the DataLoader: position → (position, input, mask, error).

    A corrupt image comes back as its error message (input and mask None) instead of
    raising in the worker, so that the main process can skip it or raise a clean
    DataError. With ``masks``, each image's defect mask comes along, aligned with the
    backbone's input (the same resize and crop, nearest-neighbour).
    """

    def __init__(
        self, dataset: ImageDataset, backbone: Backbone, indices: np.ndarray, masks: bool
    ) -> None:
        self.dataset = dataset
        self.transform = backbone.transform
        self.indices = indices
        self.masks = masks

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, Any, Any, str | None]:
        index = int(self.indices[position])
        try:
            value = self.transform(self.dataset.image(index))
            mask = self.transform.mask(self.dataset.mask(index)) if self.masks else None  # (S, S)
            return position, value, mask, None
        except DataError as error:
            return position, None, None, str(error)


def _collate(items: list[tuple[int, Any, Any, str | None]]) -> tuple[list[int], Any, Any, list]:
    """Stack the readable inputs (and masks); keep (position, message) of the unreadable."""
    from torch.utils.data import default_collate

    readable = [item for item in items if item[3] is None]
    failed = [(position, error) for position, _, _, error in items if error is not None]
    inputs = default_collate([value for _, value, _, _ in readable]) if readable else None
    masks = (
        [mask for _, _, mask, _ in readable] if readable and readable[0][2] is not None else None
    )
    return [position for position, *_ in readable], inputs, masks, failed


def default_num_workers() -> int:
    """DataLoader workers: leave one core to the backbone, use at most four."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class _StoreWriter:
    """Appends embedded rows to an open HDF5 file and finally writes the index datasets.

    Datasets grow with the rows embedded (each created at its first rows, whose shape it
    takes) and are shrunk at the end to what was kept, when skipped images are known.
    """

    def __init__(self, store: Any, rows: int) -> None:
        self.store = store
        self.rows = rows  # the images selected: each dataset's first allocation
        self.kept: list[int] = []  # positions (into the selection) of the embedded rows
        self.map_kept: list[int] = []  # positions of the rows whose maps are stored
        self.written: dict[str, int] = {}  # dataset → rows written

    def add(self, positions: list[int], encoded: Encoded, masks: Any, wanted: np.ndarray) -> None:
        """Append a batch: its (B, D) pooled features, the (B, 7, 7, D) maps of the rows
        flagged in ``wanted``, its patch layers' maps and its masks (every row)."""
        self._append("features", encoded.pooled, np.float32)
        for layer, patches in enumerate(encoded.patches):
            self._append(f"patch_maps/{layer}", patches, np.float16)  # (B, h_l, w_l, C_l)
        if masks is not None:
            self._append("masks", np.stack(masks), bool)  # (B, S, S)
        self.kept.extend(positions)
        if encoded.maps is not None and wanted.any():
            self._append("feature_maps", encoded.maps[wanted], np.float16)  # (b, 7, 7, D)
            self.map_kept.extend(np.asarray(positions)[wanted].tolist())

    def _append(self, name: str, values: np.ndarray, dtype: Any) -> None:
        if name not in self.written:
            shape = values.shape[1:]
            chunk = min(self.rows, 256) if name == "features" else 1  # features: read by blocks
            self.store.create_dataset(
                name, (self.rows, *shape), dtype, maxshape=(None, *shape), chunks=(chunk, *shape)
            )
            self.written[name] = 0
        start = self.written[name]
        self.store[name][start : start + len(values)] = values.astype(dtype, copy=False)
        self.written[name] = start + len(values)

    def finish(
        self, dataset: ImageDataset, selection: np.ndarray, skipped: list[str], attrs: dict
    ) -> None:
        """Shrink to the embedded rows, write labels, ids and the attributes."""
        rows = selection[self.kept]  # dataset positions of the embedded rows
        for name, count in self.written.items():
            self.store[name].resize((count, *self.store[name].shape[1:]))
        map_ids = [dataset.ids[i] for i in selection[self.map_kept]] if self.map_kept else None
        _write_index(
            self.store,
            labels=dataset.labels[rows],
            ids=[dataset.ids[i] for i in rows],
            defect_type=(
                None if dataset.defect_types is None else [dataset.defect_types[i] for i in rows]
            ),
            feature_map_ids=map_ids,
            skipped=skipped,
            attrs=attrs,
        )


def _write_index(
    store: Any,
    *,
    labels: np.ndarray,
    ids: list[str],
    defect_type: list[str] | None,
    feature_map_ids: list[str] | None,
    skipped: list[str],
    attrs: dict[str, Any],
) -> None:
    """Everything of an embedding file beside its features and maps, as
    :func:`load_embeddings` reads it: one row per feature row, and the counts."""
    import h5py

    text = h5py.string_dtype()
    store.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
    store.create_dataset("ids", data=ids, dtype=text)
    if defect_type is not None:
        store.create_dataset("defect_type", data=defect_type, dtype=text)
    if feature_map_ids is not None:
        store.create_dataset("feature_map_ids", data=feature_map_ids, dtype=text)
    store.create_dataset("skipped_ids", data=skipped, dtype=text)
    store.attrs.update({**attrs, "image_count": len(labels), "skipped_count": len(skipped)})


def _check_settings(
    batch_size: int, limit_per_class: int | None, feature_maps_per_class: int
) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if limit_per_class is not None and limit_per_class < 1:
        raise ConfigError(f"limit_per_class must be positive or None, got {limit_per_class}")
    if feature_maps_per_class < 0:
        raise ConfigError(f"feature_maps_per_class must be 0 or more, got {feature_maps_per_class}")


def extract_embeddings(
    dataset: ImageDataset,
    backbone: Backbone,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    limit_per_class: int | None = None,
    feature_maps_per_class: int = 0,
    patch_maps: bool = False,
    skip_corrupt: bool = False,
    attrs: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Embed a dataset split with a backbone and write the HDF5 store atomically.

    Parameters
    ----------
    dataset : ImageDataset
        One split, all classes.
    backbone : Backbone
    out : path
        The ``.h5`` file; written to a temporary file and renamed on success, so an
        interrupted run never leaves a complete-looking file.
    batch_size, num_workers : int
        DataLoader settings (decoding and preprocessing run in the workers;
        ``num_workers`` defaults to :func:`default_num_workers`).
    limit_per_class : int, optional
        Keep the first N images of each class, in dataset order (reproducible subsets).
    feature_maps_per_class : int
        Also store the (7, 7, D) maps of the first N kept images of each class. A test
        split with defect masks keeps every image's, with its mask: its runs draw
        anomaly maps of every test image for the pixel metrics.
    patch_maps : bool
        Also store every image's maps of the backbone's ``patch_layers``, for patch-level
        methods (only where one reads them: they are most of the file).
    skip_corrupt : bool
        Skip unreadable images (counted in ``skipped_count``) instead of raising DataError
        (the config's ``datasets.<name>.skip_corrupt``).
    attrs : dict, optional
        Attributes to record beside the provenance of :func:`provenance` (the workflow's
        dataset name, and the ``inputs_version`` of the images and weights).
    progress : bool
        Show a tqdm bar with images/s.

    Returns
    -------
    Path of the written file.
    """
    import h5py
    from tqdm.auto import tqdm

    _check_settings(batch_size, limit_per_class, feature_maps_per_class)
    selection = first_per_class(dataset.labels, limit_per_class)  # (M,) dataset positions
    if len(selection) == 0:
        raise DataError(f"{dataset!r} holds no image to embed")
    masks = dataset.has_masks and dataset.split == "test"
    with_maps = np.full(len(selection), masks)  # (M,) store this row's feature map
    if feature_maps_per_class:
        with_maps[first_per_class(dataset.labels[selection], feature_maps_per_class)] = True
    attrs = {**provenance(dataset, backbone, limit_per_class), **(attrs or {})}
    if patch_maps:
        attrs["patch_layers"] = json.dumps(backbone.patch_layers)
    loader = _loader(dataset, backbone, selection, batch_size, num_workers, masks)
    out = Path(out)
    with atomic_path(out) as temporary, h5py.File(temporary, "w") as store:
        writer = _StoreWriter(store, len(selection))
        description = f"embed {attrs['dataset']}/{attrs['split']} {backbone.name}"
        with tqdm(total=len(selection), unit="img", desc=description, disable=not progress) as bar:
            skipped = _embed_batches(
                loader, backbone, writer, with_maps, patch_maps, skip_corrupt, bar
            )
        skipped_ids = [dataset.ids[selection[position]] for position in skipped]
        if not writer.kept:
            raise DataError(f"no readable image in {dataset!r}: all {len(skipped)} were skipped")
        writer.finish(dataset, selection, skipped_ids, attrs)
    log.info("wrote %d embeddings (%d skipped) to %s", len(writer.kept), len(skipped), out)
    return out


def provenance(
    dataset: ImageDataset, backbone: Backbone, limit_per_class: int | None
) -> dict[str, Any]:
    """What an embedding file records of how its features were made (module docstring)."""
    return {
        **({} if backbone.runtime is None else {"runtime": backbone.runtime}),
        "dataset": dataset.name,
        "split": dataset.split,
        "category": dataset.category or "",
        "backbone": backbone.name,
        "weights": backbone.weights_id,
        "preprocessing": backbone.preprocessing,
        "input_description": backbone.input_description,
        "dim": backbone.dim,
        "package_version": __version__,
        "class_names": json.dumps(dataset.class_names),
        "limit_per_class": limit_per_class or 0,
    }


def _loader(
    dataset: ImageDataset,
    backbone: Backbone,
    selection: np.ndarray,
    batch_size: int,
    num_workers: int | None,
    masks: bool,
) -> Any:
    """Batches of the selected images (and their masks), decoded and transformed in worker
    processes."""
    import torch

    return torch.utils.data.DataLoader(
        _BackboneInputs(dataset, backbone, selection, masks=masks),
        batch_size=batch_size,
        num_workers=default_num_workers() if num_workers is None else num_workers,
        collate_fn=_collate,
        pin_memory=backbone.device.startswith("cuda"),
    )


def _embed_batches(
    loader: Any,
    backbone: Backbone,
    writer: _StoreWriter,
    with_maps: np.ndarray,
    patch_maps: bool,
    skip_corrupt: bool,
    bar: Any,
) -> list[int]:
    """Embed every batch into ``writer``; the positions of the unreadable images skipped
    (an unreadable image raises DataError unless ``skip_corrupt``)."""
    skipped = []
    for positions, inputs, masks, failed in loader:
        for position, message in failed:
            if not skip_corrupt:
                raise DataError(
                    f"{message}: remove or replace the file, or set `skip_corrupt: true` on "
                    "the dataset in the config to skip unreadable images"
                )
            log.warning("skipping %s", message)
            skipped.append(position)
        if positions:
            wanted = with_maps[positions]  # (B,)
            encoded = backbone.encode(inputs, maps=bool(wanted.any()), patches=patch_maps)
            writer.add(positions, encoded, masks, wanted)
        bar.update(len(positions) + len(failed))
    return skipped


def save_embeddings(path: str | os.PathLike[str], embeddings: Embeddings) -> Path:
    """Write features from elsewhere (precomputed by another tool, or synthetic) as an
    embedding file that every later step reads like an extracted one, atomically."""
    import h5py

    path = Path(path)
    features = np.ascontiguousarray(embeddings.features, dtype=np.float32)  # (N, D)
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as store:
        store.create_dataset(
            "features", data=features, chunks=(min(len(features), 256), features.shape[1])
        )
        with_maps = embeddings.feature_maps is not None
        if with_maps:
            store.create_dataset("feature_maps", data=embeddings.feature_maps.astype(np.float16))
        if embeddings.masks is not None:
            store.create_dataset("masks", data=np.asarray(embeddings.masks, dtype=bool))
        for layer, maps in enumerate(embeddings.patch_maps):
            store.create_dataset(f"patch_maps/{layer}", data=np.asarray(maps, dtype=np.float16))
        _write_index(
            store,
            labels=embeddings.labels,
            ids=list(embeddings.ids),
            defect_type=embeddings.defect_type,
            feature_map_ids=list(embeddings.feature_map_ids) if with_maps else None,
            skipped=[],
            attrs={
                "package_version": __version__,
                "dim": features.shape[1],
                **embeddings.attrs,
                "class_names": json.dumps(embeddings.class_names),
            },
        )
    return path


def load_embeddings(
    path: str | os.PathLike[str],
    *,
    expect_backbone: str | None = None,
    label: int | None = None,
    feature_maps: bool | None = True,
    patch_maps: bool = False,
) -> Embeddings:
    """Read an embedding file written by :func:`extract_embeddings`.

    ``expect_backbone`` guards against mixing: a file from another backbone than
    the config names raises ConfigError. ``attrs["preprocessing"]`` says how the images
    were preprocessed (files of earlier versions are read in today's names).
    ``label`` reads only the rows of that class
    (a normal bank: a tenth of CIFAR-10's training file), and ``feature_maps=False``
    leaves the feature maps on disk, so that a job holds only what it uses
    (``None``: read them where the file has defect masks, whose runs draw maps); the patch
    layers' maps are read with ``patch_maps`` (a DataError where the file has none).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MissingResourceError(
            f"embedding file {path} does not exist; create it with `cap embed`"
        )
    try:
        store = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path} is not a readable HDF5 embedding file: {error}") from error
    with store:
        missing = [name for name in REQUIRED_DATASETS if name not in store]
        if missing:
            raise DataError(
                f"{path} lacks dataset(s) {', '.join(missing)}; re-create it with `cap embed`"
            )
        attrs = {
            key: value.item() if isinstance(value, np.generic) else value
            for key, value in store.attrs.items()
        }
        _current_names(attrs)
        if expect_backbone is not None and attrs.get("backbone") != expect_backbone:
            raise ConfigError(
                f"{path} holds {attrs.get('backbone')!r} features but the config says backbone "
                f"{expect_backbone!r}; refusing to mix them: delete the file or fix the config"
            )
        labels = store["labels"][()].astype(np.int64, copy=False)
        keep = np.ones(len(labels), dtype=bool) if label is None else labels == label
        wanted = "masks" in store if feature_maps is None else feature_maps
        with_maps = wanted and "feature_maps" in store
        if patch_maps and "patch_maps" not in store:
            raise DataError(
                f"{path} holds no patch maps: a patch-level method reads them; embed with the "
                "backbone's patch_layers (the workflow does where a dataset's variants need them)"
            )
        layers = store["patch_maps"] if patch_maps else {}
        return Embeddings(
            features=_read_rows(store["features"], keep).astype(np.float32, copy=False),
            labels=labels[keep],
            ids=_select(_strings(store, "ids"), keep) or [],
            class_names=json.loads(attrs.get("class_names", "[]")),
            attrs=attrs,
            feature_maps=store["feature_maps"][()] if with_maps else None,
            feature_map_ids=(_strings(store, "feature_map_ids") or []) if with_maps else [],
            defect_type=_select(_strings(store, "defect_type"), keep),
            masks=_read_rows(store["masks"], keep) if "masks" in store else None,
            patch_maps=tuple(_read_rows(layers[str(i)], keep) for i in range(len(layers))),
        )


def _current_names(attrs: dict[str, Any]) -> None:
    """Read the provenance of earlier files in today's names: the key was once
    ``preprocessing_name`` beside the description in ``preprocessing``, and before the key
    was recorded every file was made with the paper's preprocessing (its description then
    stood in ``preprocessing``)."""
    if "preprocessing_name" in attrs:
        attrs["input_description"] = attrs.get("preprocessing", "")
        attrs["preprocessing"] = attrs.pop("preprocessing_name")
    elif attrs.get("preprocessing", "custom") not in {*PREPROCESSINGS, "custom"}:
        attrs["input_description"] = attrs["preprocessing"]
        attrs["preprocessing"] = DEFAULT_PREPROCESSING


def _read_rows(dataset: Any, keep: np.ndarray, block: int = 8192) -> np.ndarray:
    """Rows ``keep`` (N,) bool of an HDF5 dataset (N, ...), read in contiguous blocks: memory
    stays at the selected rows plus one block, and no per-row selection is built."""
    if keep.all():
        return dataset[()]
    parts = [
        dataset[start : start + block][keep[start : start + block]]
        for start in range(0, len(keep), block)
        if keep[start : start + block].any()
    ]
    return np.concatenate(parts) if parts else np.empty((0, *dataset.shape[1:]), dataset.dtype)


def _select(values: list[str] | None, keep: np.ndarray) -> list[str] | None:
    return None if values is None else [v for v, kept in zip(values, keep, strict=True) if kept]


def _strings(store: Any, name: str) -> list[str] | None:
    """A string dataset of an open HDF5 file as a list, or None when absent."""
    return list(store[name].asstr()[()]) if name in store else None
