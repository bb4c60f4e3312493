"""Pixel-level metrics of anomaly maps against ground-truth defect masks.

A method's coarse map (a patch grid, or CAP's 7 × 7 feature map) becomes a map at the
masks' resolution as PatchCore's released code makes it (``RescaleSegmentor``): bilinear
upsampling, then a Gaussian blur of σ = 4 pixels. Over every pixel of every test image:

- ``pixel_auroc``: the ROC AUC of pixel scores against the masks;
- ``aupro``: the area under the per-region-overlap curve up to a false-positive rate of
  0.3, divided by 0.3 (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV
  2021). A region is a connected component (8-connectivity) of a mask; at a threshold,
  its overlap is the share of its pixels scored at or above it, the PRO the mean overlap
  over all regions of all images, the FPR the share of defect-free pixels (of every
  image) at or above it. The curve runs over every distinct score, interpolated at 0.3.

Shapes: n images, H × W pixels (the backbone's input), h × w a coarse map's grid.
"""

from __future__ import annotations

import numpy as np

from cap.utils.errors import DataError

#: σ of the Gaussian blur, in pixels (PatchCore's ``RescaleSegmentor``).
SMOOTHING = 4.0
#: The FPR up to which AUPRO integrates (the MVTec AD paper's limit).
PRO_LIMIT = 0.3
#: The pixel metrics of a localizing run, by record field.
PIXEL_METRICS: tuple[str, ...] = ("pixel_auroc", "aupro")


def full_resolution(
    maps: np.ndarray, size: tuple[int, int], sigma: float = SMOOTHING
) -> np.ndarray:
    """Coarse maps (n, h, w) upsampled bilinearly to ``size`` (H, W) and blurred (σ ≤ 0: not):
    (n, H, W)."""
    import torch
    import torch.nn.functional as F
    from scipy.ndimage import gaussian_filter

    coarse = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None]
    upsampled = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)[:, 0]
    if sigma <= 0:  # the paper's figures: upsampled only
        return upsampled.numpy()
    return np.stack([gaussian_filter(image, sigma=sigma) for image in upsampled.numpy()])


def map_maxima(maps: np.ndarray) -> np.ndarray:
    """Each map's largest value (n,) of maps (n, h, w): a patch-level image score."""
    return maps.reshape(len(maps), -1).max(axis=1)


def pixel_metrics(masks: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`PIXEL_METRICS` of coarse ``maps`` (n, h, w) against ``masks``
    (n, H, W) bool: the maps brought to the masks' size first (:func:`full_resolution`)."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or len(masks) != len(maps):
        raise DataError(f"{len(maps)} anomaly maps for masks of shape {masks.shape}")
    scores = full_resolution(maps, masks.shape[1:])
    return {"pixel_auroc": pixel_auroc(masks, scores), "aupro": aupro(masks, scores)}


def pixel_auroc(masks: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC over every pixel: ``scores`` (n, H, W) against ``masks`` (n, H, W) bool."""
    from sklearn.metrics import roc_auc_score

    labels, values = np.asarray(masks, dtype=bool).ravel(), _finite(scores).ravel()
    if labels.all() or not labels.any():
        raise DataError("pixel AUROC needs both defect and defect-free pixels")
    return float(roc_auc_score(labels, values))


def aupro(masks: np.ndarray, scores: np.ndarray, limit: float = PRO_LIMIT) -> float:
    """Normalised area under the PRO curve up to FPR ``limit`` (module docstring)."""
    regions, normal = region_labels(masks)
    values = _finite(scores).ravel()
    if regions.max() == 0 or not normal.any():
        raise DataError("AUPRO needs defect regions and defect-free pixels")
    sizes = np.bincount(regions)  # (R + 1,), index 0: no region
    weights = np.where(regions > 0, 1.0 / (sizes[regions] * (len(sizes) - 1)), 0.0)
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the last pixel of each distinct score
    pro = np.cumsum(weights[order])[last]  # at each threshold, descending
    fpr = np.cumsum(normal[order])[last] / normal.sum()
    return curve_area(np.r_[0.0, fpr], np.r_[0.0, pro], limit) / limit


def region_labels(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's region (1…R, numbered image by image; 0 outside every region) and whether
    it is defect-free, both flattened over the images (n·H·W,)."""
    from scipy.ndimage import label

    masks = np.asarray(masks, dtype=bool)
    labelled, count = [], 0
    for mask in masks:
        regions, found = label(mask, structure=np.ones((3, 3), dtype=int))
        labelled.append(np.where(regions > 0, regions + count, 0))
        count += found
    return np.concatenate([r.ravel() for r in labelled]), ~masks.ravel()


def curve_area(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """The trapezoidal area under (x, y), x increasing, from x[0] to ``limit``, with y
    interpolated linearly at ``limit``."""
    inside = x <= limit
    xs, ys = x[inside], y[inside]
    area = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2))
    if not inside.all():
        last, after = np.flatnonzero(inside)[-1], np.flatnonzero(~inside)[0]
        at_limit = np.interp(limit, [x[last], x[after]], [y[last], y[after]])
        area += (limit - x[last]) * (y[last] + at_limit) / 2
    return area


def _finite(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise DataError(f"{int((~np.isfinite(scores)).sum())} pixel scores are NaN or inf")
    return scores
