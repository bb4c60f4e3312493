"""PatchCore against direct computations of its steps: the locally aware patch features,
the greedy coreset, the nearest-patch scores and the image score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cap.detectors import PatchCoreDetector
from cap.utils.errors import ConfigError, DataError


def layers(count: int, seed: int = 0) -> list[np.ndarray]:
    """Two patch layers: a 4 × 4 grid of 3 channels and a 2 × 2 grid of 2."""
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(count, 4, 4, 3)).astype(np.float32),
        rng.normal(size=(count, 2, 2, 2)).astype(np.float32),
    ]


def direct_patch_features(maps: list[np.ndarray], patch_size: int, pretrain: int, target: int):
    """Steps 1–3 written out position by position: each layer's zero-padded neighbourhood
    (channel-major, as torch's unfold orders it), coarser layers resized bilinearly to the
    finest grid, then the two adaptive average poolings."""
    half = patch_size // 2
    n, h, w = maps[0].shape[:3]
    per_layer = []
    for layer in maps:
        _, lh, lw, channels = layer.shape
        padded = np.pad(layer, ((0, 0), (half, half), (half, half), (0, 0)))
        windows = np.empty((n, channels * patch_size**2, lh, lw), dtype=np.float32)
        for y in range(lh):
            for x in range(lw):
                block = padded[:, y : y + patch_size, x : x + patch_size, :]  # (n, p, p, C)
                windows[:, :, y, x] = block.transpose(0, 3, 1, 2).reshape(n, -1)
        if (lh, lw) != (h, w):
            windows = torch.nn.functional.interpolate(
                torch.from_numpy(windows), size=(h, w), mode="bilinear"
            ).numpy()
        vectors = windows.reshape(n, -1, h * w).transpose(0, 2, 1).reshape(n * h * w, -1)
        per_layer.append(adaptive_mean(vectors, pretrain))
    return adaptive_mean(np.concatenate(per_layer, axis=1), target)


def adaptive_mean(vectors: np.ndarray, size: int) -> np.ndarray:
    """Adaptive average pooling of each row to ``size`` values: bin i averages the columns
    floor(i·L/size) … ceil((i+1)·L/size) − 1, as torch defines it."""
    length = vectors.shape[1]
    bins = [(i * length // size, -(-(i + 1) * length // size)) for i in range(size)]
    return np.stack([vectors[:, start:end].mean(axis=1) for start, end in bins], axis=1)


def direct_coreset(patches: np.ndarray, detector: PatchCoreDetector) -> list[int]:
    """The released code's approximate greedy coreset, with its Euclidean (square-rooted)
    distances: the same projection and starting points (same generator draws)."""
    generator = torch.Generator().manual_seed(detector.seed)
    bound = 1.0 / np.sqrt(patches.shape[1])
    projection = torch.rand(patches.shape[1], detector.projection_dim, generator=generator)
    projected = (torch.from_numpy(patches) @ (projection * 2 * bound - bound)).double()
    starts = torch.randperm(len(patches), generator=generator)[: detector.starting_points]
    distance = lambda rows: torch.cdist(projected, projected[rows])  # noqa: E731
    nearest = distance(starts).mean(dim=1)
    chosen = []
    for _ in range(max(1, int(len(patches) * detector.coreset_ratio))):
        index = int(torch.argmax(nearest))
        chosen.append(index)
        nearest = torch.minimum(nearest, distance([index])[:, 0])
    return chosen


def test_patch_features_are_the_neighbourhoods_resized_and_pooled():
    detector = PatchCoreDetector(pretrain_dim=7, target_dim=5)
    maps = layers(3)
    np.testing.assert_allclose(
        detector._patch_features(maps), direct_patch_features(maps, 3, 7, 5), rtol=1e-5, atol=1e-6
    )


def test_the_coreset_is_the_released_codes_greedy_choice():
    detector = PatchCoreDetector(coreset_ratio=0.25, projection_dim=6, starting_points=4, seed=3)
    patches = np.random.default_rng(1).normal(size=(200, 16)).astype(np.float32)
    assert list(detector._coreset(patches)) == direct_coreset(patches, detector)
    other_seed = PatchCoreDetector(coreset_ratio=0.25, projection_dim=6, starting_points=4, seed=4)
    assert list(other_seed._coreset(patches)) != list(detector._coreset(patches))


def test_scores_are_squared_distances_to_the_nearest_memory_patch_and_their_maximum():
    bank, test = layers(6, seed=0), layers(3, seed=1)
    detector = PatchCoreDetector(coreset_ratio=0.5, pretrain_dim=8, target_dim=8).fit(bank)
    assert len(detector.bank_) == int(6 * 16 * 0.5)
    queries = direct_patch_features(test, 3, 8, 8)  # (3·16, 8)
    squared = ((queries[:, None, :] - detector.bank_[None]) ** 2).sum(axis=2).min(axis=1)
    maps = detector.anomaly_maps(test)
    np.testing.assert_allclose(maps, squared.reshape(3, 4, 4), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(detector.anomaly_score(test), maps.reshape(3, -1).max(axis=1))


def test_a_patch_of_the_bank_scores_zero_and_a_changed_patch_scores_high():
    bank = layers(4)
    detector = PatchCoreDetector(coreset_ratio=1.0, pretrain_dim=8, target_dim=8).fit(bank)
    np.testing.assert_allclose(detector.anomaly_maps(bank), 0.0, atol=1e-4)
    changed = [layer.copy() for layer in bank]
    changed[0][1, 2, 3] += 10.0
    maps = detector.anomaly_maps(changed)
    image, y, x = np.unravel_index(maps.argmax(), maps.shape)
    assert image == 1 and abs(y - 2) <= 1 and abs(x - 3) <= 1  # its 3 × 3 neighbourhood
    np.testing.assert_allclose(maps[[0, 2, 3]], 0.0, atol=1e-4)


def test_bad_inputs_and_settings_are_refused_with_the_reason():
    bank = layers(4)
    with pytest.raises(ConfigError, match="patch_size must be odd"):
        PatchCoreDetector(patch_size=2).fit(bank)
    with pytest.raises(ConfigError, match="coreset_ratio"):
        PatchCoreDetector(coreset_ratio=0).fit(bank)
    detector = PatchCoreDetector(coreset_ratio=1.0, pretrain_dim=4, target_dim=4).fit(bank)
    with pytest.raises(
        DataError, match=r"patch layers of \[3\] channels but the bank had \[3, 2\]"
    ):
        detector.anomaly_maps(bank[:1])
    broken = [bank[0].copy(), bank[1]]
    broken[0][0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="patch layer 0 holds NaN"):
        detector.anomaly_maps(broken)
    with pytest.raises(DataError, match="same image count"):
        detector.anomaly_maps([bank[0], bank[1][:2]])
