"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR
2022; released code amazon-science/patchcore-inspection): a memory of locally aggregated
mid-level patch features of normal images, thinned by a greedy coreset; a test patch
scores its distance to the nearest patch in memory, an image its largest patch score.

The steps, as the released code takes them (its defaults in brackets):

1. each patch layer's map (N, h_l, w_l, C_l) is *patchified*: every position gathers its
   ``patch_size`` × ``patch_size`` neighbourhood (zero-padded) [3], C_l·3·3 values;
2. the coarser layers are resized to the first (finest) layer's grid, bilinearly;
3. each layer's patch vectors are averaged down to ``pretrain_dim`` values by adaptive
   average pooling [1024], the layers' vectors concatenated and pooled again to
   ``target_dim`` [1024];
4. the memory keeps a ``coreset_ratio`` share of the bank's patches [0.1], chosen by the
   approximate greedy k-centre coreset on a random projection to ``projection_dim``
   dimensions [128] from ``starting_points`` random starts [10];
5. a patch's score is its squared L2 distance to the nearest memory patch (faiss, 1
   neighbour), an image's score the largest of its patches'; the grid of patch scores
   is the anomaly map (upsampled and smoothed for the pixel metrics,
   :mod:`cap.metrics.localization`).

Shapes: N = images, h × w = the finest layer's grid, P = N·h·w patches, E = target_dim.
Inputs are the patch layers' maps (a sequence of (N, h_l, w_l, C_l) arrays, one per
layer), or one (N, D) array, read as one layer of a 1 × 1 grid (scikit-learn's checks,
features of any other source).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from cap.detectors.base import NO_SPREAD, BaseDetector, check_is_fitted
from cap.detectors.search import l2_knn_search
from cap.detectors.settings import COUNT, SEED_PARAM, Param
from cap.metrics.localization import map_maxima
from cap.utils.errors import ConfigError, DataError
from cap.utils.validation import check_features, check_not_constant, check_same_dim

#: The patch layers' maps of N images: one (N, h_l, w_l, C_l) array per layer.
Layers = Sequence[np.ndarray]


class PatchCoreDetector(BaseDetector, name="patchcore"):
    """PatchCore on a backbone's patch layers (module docstring); deterministic given
    ``seed`` (the projection and the coreset's starting points).

    Parameters
    ----------
    coreset_ratio : float
        Share of the bank's patches kept in memory, in (0, 1].
    patch_size : int
        Side of the neighbourhood each patch aggregates (odd).
    pretrain_dim : int
        Values each layer's patch vector is averaged down to.
    target_dim : int
        Values of the final patch feature E.
    projection_dim : int
        Dimensions of the random projection the coreset is chosen in.
    starting_points : int
        Random patches the coreset's first distances are measured from.
    seed : int
        Seeds the projection and the starting points.
    """

    reads_patches: ClassVar[bool] = True
    localizes: ClassVar[bool] = True
    scores_are_map_maxima: ClassVar[bool] = True
    declared_settings: ClassVar[Mapping[str, Param]] = {
        "coreset_ratio": Param(
            "share of the bank's patches kept in memory (greedy coreset)",
            Interval(Real, 0, 1, closed="right"),
        ),
        "patch_size": Param("side of the neighbourhood each patch aggregates (odd)", COUNT),
        "pretrain_dim": Param("values each layer's patch vector is averaged down to", COUNT),
        "target_dim": Param("values of the final patch feature", COUNT),
        "projection_dim": Param(
            "dimensions of the random projection the coreset is chosen in", COUNT
        ),
        "starting_points": Param("random patches the coreset's distances start from", COUNT),
        "seed": SEED_PARAM,
    }
    failed_checks: ClassVar[Mapping[str, str]] = {"check_fit2d_1sample": NO_SPREAD}

    def __init__(
        self,
        *,
        coreset_ratio: float = 0.1,
        patch_size: int = 3,
        pretrain_dim: int = 1024,
        target_dim: int = 1024,
        projection_dim: int = 128,
        starting_points: int = 10,
        seed: int = 0,
    ) -> None:
        self.coreset_ratio = coreset_ratio
        self.patch_size = patch_size
        self.pretrain_dim = pretrain_dim
        self.target_dim = target_dim
        self.projection_dim = projection_dim
        self.starting_points = starting_points
        self.seed = seed

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"coreset_ratio": 0.5, "pretrain_dim": 16, "target_dim": 16, "projection_dim": 2}

    def fit(self, X: Layers | np.ndarray, y: object = None) -> PatchCoreDetector:
        """Keep the coreset of the bank's patch features; returns ``self``."""
        self._validate_params()
        if self.patch_size % 2 == 0:
            raise ConfigError(f"patch_size must be odd (a centred square); got {self.patch_size}")
        layers = _check_layers(X, "bank")
        patches = self._patch_features(layers)  # (P, E)
        check_not_constant(patches, "bank")
        self.bank_ = patches[self._coreset(patches)]  # (M, E)
        self.layer_channels_ = [layer.shape[-1] for layer in layers]
        self.n_features_in_ = sum(self.layer_channels_)
        return self

    def anomaly_score(self, X: Layers | np.ndarray, *, neighbors: Any = None) -> np.ndarray:
        """Image scores (n,): each image's largest patch score; higher = more anomalous."""
        return map_maxima(self.anomaly_maps(X))  # anomaly_maps checks X once

    def anomaly_maps(self, X: Layers | np.ndarray) -> np.ndarray:
        """Patch scores (n, h, w) on the finest layer's grid: each patch's squared distance to
        its nearest patch in memory."""
        check_is_fitted(self)
        layers = self._layers_of(X)
        n, h, w = layers[0].shape[:3]
        distances, _ = l2_knn_search(self.bank_, self._patch_features(layers), k=1)  # (n·h·w, 1)
        return distances.reshape(n, h, w)

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        return self.anomaly_score(X)  # every input is checked by anomaly_maps

    def _layers_of(self, X: Layers | np.ndarray) -> list[np.ndarray]:
        """Validated query layers matching the bank's (count and channels)."""
        layers = _check_layers(X, "X")
        channels = [layer.shape[-1] for layer in layers]
        if len(channels) == len(self.layer_channels_) == 1:  # one layer: as every detector says
            check_same_dim(layers[0][:1, 0, 0], self.layer_channels_[0], "X")
        if channels != self.layer_channels_:
            raise DataError(
                f"X has patch layers of {channels} channels but the bank had "
                f"{self.layer_channels_}: embed both with the same backbone and patch_layers"
            )
        return layers

    def _patch_features(self, layers: list[np.ndarray]) -> np.ndarray:
        """Steps 1–3 of the module docstring: (P, E) float32, image by image in blocks so
        that memory stays at one block's unfolded maps."""
        import torch

        n = len(layers[0])
        block = max(1, 2**26 // max(_unfolded_size(layers, self.patch_size), 1))
        features = [
            self._aggregate([torch.from_numpy(layer[start : start + block]) for layer in layers])
            for start in range(0, n, block)
        ]
        return np.concatenate(features)

    def _aggregate(self, layers: list[Any]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        grid = layers[0].shape[1:3]  # (h, w) of the finest layer
        pooled = []
        for layer in layers:
            maps = layer.float().permute(0, 3, 1, 2)  # (b, C, h_l, w_l)
            b, _, h, w = maps.shape
            unfolded = F.unfold(maps, self.patch_size, padding=self.patch_size // 2)
            values = unfolded.shape[1]  # C·3·3 per position, channel by channel
            if (h, w) != tuple(grid):
                unfolded = F.interpolate(
                    unfolded.reshape(b, values, h, w), size=grid, mode="bilinear"
                ).reshape(b, values, -1)  # (b, C·9, h·w) on the finest grid
            vectors = unfolded.permute(0, 2, 1).reshape(-1, 1, values)  # (b·h·w, 1, C·9)
            pooled.append(F.adaptive_avg_pool1d(vectors, self.pretrain_dim))  # (b·h·w, 1, pre)
        stacked = torch.cat(pooled, dim=2)  # (b·h·w, 1, L·pre), layer by layer
        return F.adaptive_avg_pool1d(stacked, self.target_dim).squeeze(1).numpy()  # (b·h·w, E)

    def _coreset(self, patches: np.ndarray) -> np.ndarray:
        """Step 4: indices of the approximate greedy k-centre coreset of ``patches`` (P, E)."""
        import torch

        count = max(1, int(len(patches) * self.coreset_ratio))
        if count >= len(patches):
            return np.arange(len(patches))
        generator = torch.Generator().manual_seed(self.seed)
        bound = 1.0 / np.sqrt(patches.shape[1])  # nn.Linear's default initialisation
        projection = torch.rand(patches.shape[1], self.projection_dim, generator=generator)
        projected = torch.from_numpy(patches) @ (projection * 2 * bound - bound)  # (P, 128)
        squared = (projected * projected).sum(dim=1)  # (P,)
        starts = torch.randperm(len(patches), generator=generator)[: self.starting_points]
        inner = projected @ projected[starts].T  # (P, s)
        to_starts = (squared[:, None] - 2 * inner + squared[starts][None]).clamp_(0).sqrt_()
        # The squared distance to the nearest chosen patch (at first: the square of the mean
        # distance to the starting points); squares keep the released code's choices.
        nearest = to_starts.mean(dim=1).square_()  # (P,)
        distances = torch.empty_like(nearest)  # one buffer: the loop is memory-bound
        chosen = []
        for _ in range(count):
            index = int(torch.argmax(nearest))
            chosen.append(index)
            torch.mv(projected, projected[index], out=distances)
            distances.mul_(-2).add_(squared).add_(squared[index]).clamp_(min=0)
            torch.minimum(nearest, distances, out=nearest)
        return np.asarray(chosen)


def _check_layers(X: Layers | np.ndarray, name: str) -> list[np.ndarray]:
    """Patch layers as float32 arrays (n, h_l, w_l, C_l) of one image count; one 2-D
    array (n, D) is a single layer of a 1 × 1 grid."""
    if not isinstance(X, list | tuple):  # one array: 4-D maps, else (n, D) features
        if getattr(X, "ndim", 0) != 4:
            return [check_features(X, name)[:, None, None, :]]
        X = [X]
    layers = []
    for index, layer in enumerate(X):
        layer = np.asarray(layer, dtype=np.float32)
        if layer.ndim != 4 or 0 in layer.shape:
            raise DataError(
                f"{name}: patch layer {index} must be (n, h, w, C) maps; got shape {layer.shape}"
            )
        if not np.isfinite(layer).all():
            raise DataError(f"{name}: patch layer {index} holds NaN or inf values")
        layers.append(layer)
    if not layers or len({len(layer) for layer in layers}) != 1:
        raise DataError(f"{name}: patch layers must be given, each with the same image count")
    return layers


def _unfolded_size(layers: list[np.ndarray], patch_size: int) -> int:
    """Floats of one image's unfolded layers at the finest grid."""
    h, w = layers[0].shape[1:3]
    return sum(h * w * layer.shape[-1] * patch_size**2 for layer in layers)
