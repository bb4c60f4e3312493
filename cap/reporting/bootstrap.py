"""Bootstrap intervals over the test images of one category.

An industrial category (MVTec style) has one normal class and a test split of good and
defective images, so there are no classes to average over: the uncertainty of a method's
metric is that of its finite test split. Each resample draws, with replacement, as many
good images from the good ones and as many defective from the defective ones as the split
has (:func:`stratified_resamples`), so that every resample has both and the metrics keep
their meaning. Every method is measured on the *same* resamples, which makes the
differences between methods paired: the images that are hard for one method are mostly
hard for the other, and that shared part cancels in the difference.

A resample is handled as counts, how often it drew each image (B, M), and every metric is
computed from those counts for all resamples at once: an image drawn twice counts twice
(its defect regions too), exactly as if it were in the resample twice.

- Image metrics (:data:`~cap.metrics.image.METRICS`) and the AUROC of good images against
  each defect type are exact on every resample (cumulative counts over the distinct
  scores, ties as scikit-learn handles them).
- Pixel metrics (:data:`~cap.metrics.localization.PIXEL_METRICS`) on resamples are binned:
  each run's maps are brought to the masks' resolution once, their pixel scores cut at up
  to ``bins`` thresholds (quantiles of the defect and of the defect-free pixels), and per
  image (and per defect region) only the pixel counts per bin are kept. Pixel AUROC counts
  the pairs within a bin one half; AUPRO is the PRO curve at the thresholds, the points of
  the exact curve at those scores. The estimate on the whole split stays exact.

Shapes: M test images, B resamples, K score bins, R defect regions, H × W the masks'
pixels, h × w a coarse map's grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cap.metrics.image import METRICS, roc_metrics, score_metrics
from cap.metrics.localization import (
    PIXEL_METRICS,
    PRO_LIMIT,
    aupro,
    curve_area,
    full_resolution,
    pixel_auroc,
    region_labels,
)
from cap.reporting.claims import CONFIDENCE
from cap.utils.errors import DataError

#: Score thresholds of the binned pixel metrics: enough that the binned value on the whole
#: split is within 0.002 of the exact one on realistic maps (tested).
PIXEL_BINS = 1000


@dataclass(frozen=True)
class MethodRuns:
    """One method's runs on the category, one entry per seed: the intervals average the
    seeds on each resample, so that they hold the test split's uncertainty, not the seeds'."""

    scores: list[np.ndarray]  # per seed: (M,) image scores, higher = more anomalous
    maps: list[np.ndarray] | None = None  # per seed: (M, h, w) coarse maps; None: no localization
    pixel: list[Mapping[str, float]] | None = None  # per seed: exact pixel metrics, if known

    def __post_init__(self) -> None:
        if not self.scores:
            raise DataError("a method needs the scores of at least one seed")
        for name, given in (("anomaly maps", self.maps), ("pixel metrics", self.pixel)):
            if given is not None and len(given) != len(self.scores):
                raise DataError(f"{len(self.scores)} seeds of scores but {len(given)} of {name}")


@dataclass(frozen=True)
class PixelHistograms:
    """One run's pixel scores as counts per score bin: what a resample of its images needs."""

    normal: np.ndarray  # (M, K) defect-free pixels of each image per bin
    defect: np.ndarray  # (M, K) defect pixels of each image per bin
    overlap: np.ndarray  # (R, K) share of each region's pixels at or above each bin's threshold
    region_image: np.ndarray  # (R,) the image of each region


@dataclass(frozen=True)
class Replicates:
    """Each method's metrics on the whole split and on every resample; the resamples are
    shared by all methods, which makes :meth:`differences` paired."""

    estimates: dict[tuple[str, str], float]  # (method, metric) → whole split, mean over seeds
    values: dict[tuple[str, str], np.ndarray]  # (method, metric) → (B,) per resample, same mean
    seeds: dict[str, int]  # method → its number of seeds

    def table(self, level: float = CONFIDENCE) -> pd.DataFrame:
        """One row per (method, metric): the estimate and its percentile interval at
        ``level``; ``resamples`` counts the resamples with a value (a defect type that a
        resample did not draw gives none)."""
        rows = []
        for (method, metric), estimate in self.estimates.items():
            values = self.values[method, metric]
            low, high = _percentiles(values, level)
            rows.append(
                {
                    "method": method,
                    "metric": metric,
                    "estimate": estimate,
                    "low": low,
                    "high": high,
                    "seeds": self.seeds[method],
                    "resamples": int(np.isfinite(values).sum()),
                }
            )
        return pd.DataFrame.from_records(rows)

    def differences(
        self, pairs: Sequence[tuple[str, str]] | None = None, level: float = CONFIDENCE
    ) -> pd.DataFrame:
        """One row per pair (a, b) and metric both have: the difference a − b of the
        estimates, its percentile interval over the same resamples, and a two-sided
        bootstrap p-value.

        Parameters
        ----------
        pairs
            The (method, versus) pairs; by default every unordered pair once, in the
            methods' order. For metrics of :data:`~cap.metrics.image.LOWER_IS_BETTER` a
            negative difference favours ``method``.
        level
            Coverage of the interval.

        Notes
        -----
        ``p_value`` is two-sided and inverts the percentile interval: the smallest
        1 − level at which the interval would exclude zero. Over the B resamples with a
        difference d, ``p = min(1, 2 · min(1 + #{d ≤ 0}, 1 + #{d ≥ 0}) / (B + 1))``; the
        ones added keep it from 0, which B resamples cannot show, so it is at least
        2 / (B + 1).
        """
        methods = list(self.seeds)
        pairs = list(itertools.combinations(methods, 2)) if pairs is None else list(pairs)
        unknown = sorted({name for pair in pairs for name in pair} - set(methods))
        if unknown:
            raise DataError(f"unknown methods in pairs: {unknown}; known: {methods}")
        rows = []
        for method, versus in pairs:
            for (name, metric), estimate in self.estimates.items():
                if name != method or (versus, metric) not in self.estimates:
                    continue
                differences = self.values[method, metric] - self.values[versus, metric]
                differences = differences[np.isfinite(differences)]
                low, high = _percentiles(differences, level)
                below = 1 + np.count_nonzero(differences <= 0)
                above = 1 + np.count_nonzero(differences >= 0)
                rows.append(
                    {
                        "method": method,
                        "versus": versus,
                        "metric": metric,
                        "difference": estimate - self.estimates[versus, metric],
                        "low": low,
                        "high": high,
                        "p_value": min(1.0, 2 * min(below, above) / (1 + len(differences))),
                        "resamples": len(differences),
                    }
                )
        return pd.DataFrame.from_records(rows)


def stratified_resamples(is_anomaly: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """(B, M) image indices: each resample draws, with replacement, as many good images
    from the good ones and as many defective from the defective ones as the split has, and
    puts them where the split has them (``is_anomaly[indices[b]] == is_anomaly``)."""
    is_anomaly = np.asarray(is_anomaly, dtype=bool)
    if resamples < 1:
        raise DataError(f"resamples must be at least 1, not {resamples}")
    rng = np.random.default_rng(seed)
    indices = np.empty((resamples, len(is_anomaly)), dtype=np.int64)
    for stratum in (~is_anomaly, is_anomaly):
        members = np.flatnonzero(stratum)
        if len(members) == 0:
            raise DataError("the test split needs both good and defective images")
        indices[:, members] = rng.choice(members, size=(resamples, len(members)))
    return indices


def resample_counts(indices: np.ndarray, images: int) -> np.ndarray:
    """How often each resample of ``indices`` (B, M) drew each of ``images`` images: (B, M)."""
    rows = np.arange(len(indices))[:, None]
    return np.bincount((rows * images + indices).ravel(), minlength=len(indices) * images).reshape(
        len(indices), images
    )


def pixel_histograms(
    masks: np.ndarray, scores: np.ndarray, bins: int = PIXEL_BINS
) -> PixelHistograms:
    """The counts per score bin of ``scores`` (M, H, W), maps already at the masks'
    resolution, against ``masks`` (M, H, W) bool.

    The thresholds are up to ``bins`` pixel scores: half at evenly spaced quantiles of the
    defect pixels, half of the defect-free ones, so that both the ROC and the low-FPR part
    of the PRO curve are resolved. Bin j holds the scores from threshold j up to the next.
    """
    masks = np.asarray(masks, dtype=bool)
    values = np.asarray(scores).ravel()
    defect = masks.ravel()
    if defect.all() or not defect.any():
        raise DataError("pixel metrics need both defect and defect-free pixels")
    thresholds = np.unique(
        np.concatenate(
            [_quantiles(values[defect], bins // 2), _quantiles(values[~defect], bins // 2)]
        )
    )
    width = len(thresholds)
    bin_of = np.searchsorted(thresholds, values, side="right") - 1  # (M·H·W,) in 0…K−1
    image_of = np.repeat(np.arange(len(masks)), masks[0].size)
    per_image = np.bincount(
        (image_of * 2 + defect) * width + bin_of, minlength=len(masks) * 2 * width
    ).reshape(len(masks), 2, width)
    regions, _ = region_labels(masks)
    inside = regions > 0
    count = int(regions.max())
    per_region = np.bincount(
        regions[inside] * width + bin_of[inside], minlength=(count + 1) * width
    ).reshape(count + 1, width)[1:]
    at_or_above = np.cumsum(per_region[:, ::-1], axis=1)[:, ::-1]  # (R, K)
    region_image = np.zeros(count + 1, dtype=np.int64)
    region_image[regions[inside]] = image_of[inside]
    return PixelHistograms(
        normal=per_image[:, 0].astype(np.float64),
        defect=per_image[:, 1].astype(np.float64),
        overlap=at_or_above / at_or_above[:, :1],
        region_image=region_image[1:],
    )


def resample_pixel_metrics(
    histograms: PixelHistograms, counts: np.ndarray, limit: float = PRO_LIMIT
) -> dict[str, np.ndarray]:
    """Binned pixel AUROC and AUPRO on each resample given as ``counts`` (B, M), each (B,):
    the definitions of :mod:`cap.metrics.localization` on the images repeated by their counts,
    at the thresholds of ``histograms``; NaN where a resample has no defect pixel (or no
    region)."""
    counts = np.asarray(counts, dtype=np.float64)
    normal = counts @ histograms.normal  # (B, K)
    defect = counts @ histograms.defect  # (B, K)
    normal_total, defect_total = normal.sum(axis=1), defect.sum(axis=1)
    below = np.cumsum(normal, axis=1) - normal  # defect-free pixels in lower bins
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = np.sum(defect * (below + normal / 2), axis=1) / (defect_total * normal_total)
        # (B, K) at the thresholds from the highest down: the curve from FPR 0 up
        fpr = np.cumsum(normal[:, ::-1], axis=1) / normal_total[:, None]
        region_weights = counts[:, histograms.region_image]  # (B, R)
        pro = (region_weights @ histograms.overlap)[:, ::-1] / region_weights.sum(axis=1)[:, None]
    areas = np.array(
        [
            curve_area(np.r_[0.0, x], np.r_[0.0, y], limit) / limit
            if np.isfinite(y).all()
            else np.nan
            for x, y in zip(fpr, pro, strict=True)
        ]
    )
    return {"pixel_auroc": auroc, "aupro": areas}


def bootstrap(
    is_anomaly: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | Mapping[int, str],
    methods: Mapping[str, MethodRuns],
    masks: np.ndarray | None = None,
    resamples: int = 1000,
    seed: int = 0,
    bins: int = PIXEL_BINS,
) -> Replicates:
    """Every method's metrics on the whole split and on the same stratified resamples.

    Parameters
    ----------
    is_anomaly
        (M,) 1 for a defective test image, 0 for a good one.
    labels
        (M,) each image's type: 0 good, else a defect type (non-zero exactly where
        ``is_anomaly``).
    class_names
        The name of each label, ``class_names[label]``.
    methods
        Method name → its runs; every run's scores (and maps) cover the M images.
    masks
        (M, H, W) bool ground-truth defect masks, or None: no pixel metrics. A method's
        exact pixel metrics are its runs' ``pixel`` where given (the run records hold
        them: computing them again is most of the time), else computed here.
    resamples
        B, the number of stratified resamples (:func:`stratified_resamples`).
    seed
        Seed of the resamples.
    bins
        Thresholds of the binned pixel metrics on resamples (:func:`pixel_histograms`).

    Returns
    -------
    Replicates
        Metrics: every image metric of :data:`~cap.metrics.image.METRICS`;
        ``auroc:<defect type>``, the AUROC of the good images against that type only (on a
        resample: the resample's good images and images of that type, NaN where it drew
        none); and, for methods with maps when masks are given,
        :data:`~cap.metrics.localization.PIXEL_METRICS`. Estimates are exact (pixel metrics
        as :func:`~cap.metrics.localization.pixel_metrics` computes them); per-resample pixel
        metrics are binned. Each value is the mean over the method's seeds.
    """
    is_anomaly, labels, masks = _checked(is_anomaly, labels, class_names, methods, masks)
    counts = resample_counts(stratified_resamples(is_anomaly, resamples, seed), len(is_anomaly))
    defect_types = {int(label): class_names[int(label)] for label in np.unique(labels[is_anomaly])}
    estimates: dict[tuple[str, str], float] = {}
    values: dict[tuple[str, str], np.ndarray] = {}
    for method, runs in methods.items():
        per_seed: dict[str, list[tuple[float, np.ndarray]]] = {}
        for index, scores in enumerate(runs.scores):
            scores = np.asarray(scores, dtype=np.float64)
            exact = score_metrics(is_anomaly, scores)
            resampled = roc_metrics(is_anomaly, scores, counts)
            for metric in METRICS:
                per_seed.setdefault(metric, []).append((exact[metric], resampled[metric]))
            for label, name in defect_types.items():
                kept = (labels == 0) | (labels == label)
                exact = score_metrics(is_anomaly[kept], scores[kept])["auroc"]
                restricted = roc_metrics(is_anomaly, scores, counts * kept)["auroc"]
                per_seed.setdefault(f"auroc:{name}", []).append((exact, restricted))
            if runs.maps is not None and masks is not None:
                full = full_resolution(np.asarray(runs.maps[index]), masks.shape[1:])
                exact = (
                    runs.pixel[index]
                    if runs.pixel is not None
                    else {"pixel_auroc": pixel_auroc(masks, full), "aupro": aupro(masks, full)}
                )
                binned = resample_pixel_metrics(pixel_histograms(masks, full, bins), counts)
                for metric in PIXEL_METRICS:
                    per_seed.setdefault(metric, []).append((exact[metric], binned[metric]))
        for metric, seeds in per_seed.items():
            estimates[method, metric] = float(np.mean([exact for exact, _ in seeds]))
            values[method, metric] = np.mean([replicates for _, replicates in seeds], axis=0)
    return Replicates(estimates, values, {name: len(runs.scores) for name, runs in methods.items()})


def _checked(
    is_anomaly: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | Mapping[int, str],
    methods: Mapping[str, MethodRuns],
    masks: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    is_anomaly, labels = np.asarray(is_anomaly).astype(bool), np.asarray(labels)
    images = len(is_anomaly)
    if labels.shape != (images,) or is_anomaly.ndim != 1:
        raise DataError(f"labels of shape {labels.shape} for {images} test images")
    if not np.array_equal(labels != 0, is_anomaly):
        raise DataError("labels must be non-zero exactly for the defective images")
    if is_anomaly.all() or not is_anomaly.any():
        raise DataError(
            f"the test split needs good and defective images: {int(is_anomaly.sum())} of "
            f"{images} are defective"
        )
    for label in np.unique(labels[is_anomaly]):
        try:
            class_names[int(label)]
        except (IndexError, KeyError):
            raise DataError(f"no name in class_names for defect label {label}") from None
    if not methods:
        raise DataError("no methods to bootstrap")
    if masks is not None:
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3 or len(masks) != images:
            raise DataError(f"masks of shape {masks.shape} for {images} test images")
    for name, runs in methods.items():
        for seed, scores in enumerate(runs.scores):
            if np.shape(scores) != (images,):
                raise DataError(
                    f"{name}: seed {seed} has scores of shape {np.shape(scores)} for "
                    f"{images} test images"
                )
        for seed, maps in enumerate(runs.maps or []):
            if np.ndim(maps) != 3 or len(maps) != images:
                raise DataError(
                    f"{name}: seed {seed} has anomaly maps of shape {np.shape(maps)}, "
                    f"not ({images}, h, w)"
                )
    return is_anomaly, labels, masks


def _quantiles(values: np.ndarray, count: int) -> np.ndarray:
    """``count`` evenly spaced quantiles of ``values`` that are values of it (min and max
    included), so that each threshold is a point of the exact curves."""
    ordered = np.sort(values)
    return ordered[np.round(np.linspace(0, len(ordered) - 1, max(count, 2))).astype(np.int64)]


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise DataError(f"level must be between 0 and 1, not {level}")
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return np.nan, np.nan
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
