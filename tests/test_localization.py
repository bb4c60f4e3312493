"""The pixel metrics against their definitions: AUPRO on hand-made masks with known
regions and overlaps, pixel AUROC, and the maps brought to the masks' resolution."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cap.metrics.localization import aupro, full_resolution, pixel_auroc, pixel_metrics
from cap.utils.errors import DataError


def masks_with_three_regions() -> np.ndarray:
    """Two 6 × 6 masks: a 2 × 2 square and a 1 × 3 bar in the first, and in the second an
    L touching a single pixel only diagonally (8-connectivity: one region of 4 pixels)."""
    masks = np.zeros((2, 6, 6), dtype=bool)
    masks[0, 0:2, 0:2] = True  # region A, 4 pixels
    masks[0, 4, 2:5] = True  # region B, 3 pixels
    masks[1, 1:4, 1] = True  # region C: the L's 3 pixels ...
    masks[1, 4, 2] = True  # ... and one diagonal neighbour
    return masks


def direct_aupro(masks: np.ndarray, scores: np.ndarray, limit: float = 0.3) -> float:
    """The definition, threshold by threshold, regions found by flood fill."""
    regions = []
    for image, mask in enumerate(masks):
        seen = np.zeros_like(mask)
        for start in zip(*np.nonzero(mask), strict=True):
            if seen[start]:
                continue
            region, stack = [], [start]
            seen[start] = True
            while stack:
                y, x = stack.pop()
                region.append((image, y, x))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        inside = 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]
                        if inside and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            regions.append(region)
    normal = scores[~masks]
    points = [(0.0, 0.0)]
    for t in np.unique(scores)[::-1]:
        fpr = (normal >= t).mean()
        pro = np.mean([np.mean([scores[p] >= t for p in region]) for region in regions])
        points.append((fpr, pro))
    area = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 >= limit:
            break
        if x1 > limit:
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


def test_the_regions_are_counted_with_8_connectivity():
    from cap.metrics.localization import region_labels

    regions, normal = region_labels(masks_with_three_regions())
    assert regions.max() == 3 and np.bincount(regions)[1:].tolist() == [4, 3, 4]
    assert normal.sum() == 72 - 11


def test_aupro_of_hand_made_scores():
    masks = masks_with_three_regions()
    perfect = masks.astype(float)  # every defect pixel above every normal one
    assert aupro(masks, perfect) == pytest.approx(1.0)
    # region A found at once, B and C only as the threshold reaches every normal pixel:
    # PRO 1/3 until FPR 1, so the area up to 0.3 is 0.3/3
    half = np.where(masks, 0.0, 0.5)
    half[0, 0:2, 0:2] = 1.0
    assert aupro(masks, half) == pytest.approx(1 / 3)
    # half of region A's pixels, and B entirely, above everything: PRO (0.5 + 1) / 3 at FPR 0
    partial = np.where(masks, 0.0, 0.4)
    partial[0, 0, 0:2] = 1.0
    partial[0, 4, 2:5] = 0.9
    assert aupro(masks, partial) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aupro_equals_the_direct_computation_with_ties(seed):
    rng = np.random.default_rng(seed)
    masks = masks_with_three_regions()
    scores = np.round(rng.random(masks.shape) + 0.6 * masks, 1)  # ties on purpose
    assert aupro(masks, scores) == pytest.approx(direct_aupro(masks, scores), abs=1e-12)
    assert aupro(masks, scores, limit=1.0) == pytest.approx(
        direct_aupro(masks, scores, limit=1.0), abs=1e-12
    )


def test_pixel_auroc_is_the_roc_auc_over_every_pixel():
    rng = np.random.default_rng(0)
    masks = masks_with_three_regions()
    scores = rng.random(masks.shape) + masks
    expected = roc_auc_score(masks.ravel(), scores.ravel())
    assert pixel_auroc(masks, scores) == pytest.approx(expected)
    with pytest.raises(DataError, match="both defect and defect-free"):
        pixel_auroc(np.zeros_like(masks), scores)
    with pytest.raises(DataError, match="NaN or inf"):
        pixel_auroc(masks, np.where(masks, np.nan, 0.0))


def test_coarse_maps_are_upsampled_and_smoothed_to_the_masks():
    coarse = np.zeros((2, 4, 4), dtype=np.float32)
    coarse[0, 0, 0] = 1.0  # one hot patch in a corner
    full = full_resolution(coarse, (32, 32))
    assert full.shape == (2, 32, 32) and not full[1].any()
    assert np.unravel_index(full[0].argmax(), (32, 32)) == (0, 0)  # still peaks there
    assert full[0].max() < 1.0  # blurred
    masks = np.zeros((2, 32, 32), dtype=bool)
    masks[0, :8, :8] = True
    metrics = pixel_metrics(masks, coarse)
    assert metrics["pixel_auroc"] > 0.9 and metrics["aupro"] > 0.5
