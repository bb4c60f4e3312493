"""Runs on a test split with defect masks: patch-level fits, anomaly maps, pixel metrics in
the record, maps kept and proved by the run cache, and the maps file of a batch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_protocol import inputs_of, spec

from cap.detectors import NoAdaptationDetector, PatchCoreDetector
from cap.evaluation.neighbors import search_task_neighbors
from cap.evaluation.protocol import OneClassTask
from cap.evaluation.records import read_maps, write_maps
from cap.evaluation.runs import localize, make_run
from cap.metrics.localization import pixel_metrics
from cap.utils.errors import DataError

SIDE = 16  # mask side (pixels)
GRID = 4  # patch grid side


def defect_task(seed: int = 0) -> OneClassTask:
    """Eight good training images and a test split of 4 good and 4 defective ones; a defect
    is one bright patch of the 4 × 4 grid (and of the 2 × 2 second layer), its mask the
    matching square of pixels."""
    rng = np.random.default_rng(seed)

    def layers(count: int, defects: list[tuple[int, int] | None]) -> tuple[np.ndarray, ...]:
        fine = rng.normal(size=(count, GRID, GRID, 6)).astype(np.float32)
        coarse = rng.normal(size=(count, GRID // 2, GRID // 2, 3)).astype(np.float32)
        for image, where in enumerate(defects):
            if where is not None:
                fine[image, where[0], where[1]] += 6.0
                coarse[image, where[0] // 2, where[1] // 2] += 3.0
        return fine, coarse

    defects = [None] * 4 + [(0, 0), (1, 2), (3, 3), (2, 1)]
    masks = np.zeros((8, SIDE, SIDE), dtype=bool)
    cell = SIDE // GRID
    for image, where in enumerate(defects):
        if where is not None:
            rows, columns = (slice(w * cell, (w + 1) * cell) for w in where)
            masks[image, rows, columns] = True
    bank_patches, test_patches = layers(8, [None] * 8), layers(8, defects)
    pooled = lambda patches: patches[0].mean(axis=(1, 2))  # noqa: E731
    is_anomaly = np.array([0] * 4 + [1] * 4)
    return OneClassTask(
        bank=pooled(bank_patches),
        bank_ids=[f"train/{i}" for i in range(8)],
        test=pooled(test_patches),
        test_ids=[f"test/{i}" for i in range(8)],
        test_labels=is_anomaly,
        is_anomaly=is_anomaly,
        normal_class_name="part",
        bank_patches=bank_patches,
        test_patches=test_patches,
        test_masks=masks,
        test_maps=test_patches[0],  # (M, h, w, D): the "last feature maps" of pooled features
    )


PATCHCORE = {"coreset_ratio": 0.5, "pretrain_dim": 8, "target_dim": 8, "projection_dim": 4}


def test_a_patch_level_run_scores_patches_and_gets_the_pixel_metrics_of_its_maps():
    task = defect_task()
    inputs = inputs_of(task, search_task_neighbors(task, k_max=2))
    made = make_run(spec("patchcore", PATCHCORE), inputs)
    detector = PatchCoreDetector(**PATCHCORE).fit(list(task.bank_patches))
    np.testing.assert_array_equal(made.maps, detector.anomaly_maps(list(task.test_patches)))
    np.testing.assert_array_equal(made.scores, made.maps.reshape(8, -1).max(axis=1))
    assert made.maps.shape == (8, GRID, GRID)
    expected = pixel_metrics(task.test_masks, made.maps)
    assert {key: made.record[key] for key in expected} == expected
    assert made.record["auroc"] == 1.0 and made.record["pixel_auroc"] > 0.9


def test_pooled_methods_that_localize_draw_maps_and_the_others_only_score():
    task = defect_task()
    inputs = inputs_of(task, search_task_neighbors(task, k_max=2))
    no_adaptation = make_run(spec("no_adaptation", {"k": 2}), inputs)
    assert no_adaptation.maps.shape == (8, GRID, GRID) and "aupro" in no_adaptation.record
    dn2 = make_run(spec("dn2", {"k": 2}), inputs)
    assert dn2.maps is None and "pixel_auroc" not in dn2.record
    without_masks = inputs_of(dataclasses.replace(task, test_masks=None), inputs.neighbors)
    assert make_run(spec("no_adaptation", {"k": 2}), without_masks).maps is None


def test_maps_of_pooled_methods_need_every_test_images_feature_maps():
    task = dataclasses.replace(defect_task(), test_maps=None)
    fitted = NoAdaptationDetector(k=2).fit(task.bank)
    with pytest.raises(DataError, match="every test image's feature maps"):
        localize(fitted, task, search_task_neighbors(task, k_max=2))


def test_the_cache_keeps_a_localizing_runs_maps_and_proves_them(tmp_path, caplog):
    from cap.evaluation.cache import RunCache

    task = defect_task()
    inputs = inputs_of(task, search_task_neighbors(task, k_max=2))
    cache = RunCache(tmp_path / "cache")
    run = spec("patchcore", PATCHCORE)
    first = make_run(run, inputs, cache=cache)
    again = make_run(run, inputs, cache=cache)
    assert again.record["source"] == "cache"
    np.testing.assert_array_equal(again.maps, first.maps)
    (maps_file,) = (tmp_path / "cache").rglob("*.maps.npy")
    np.save(maps_file, np.flip(first.maps, axis=2))  # other maps: digest and metrics disagree
    redone = make_run(run, inputs, cache=cache)
    assert redone.record["source"] == "fit" and "maps do not match their sha256" in caplog.text
    np.testing.assert_array_equal(redone.maps, first.maps)
    moved = dataclasses.replace(task, test_masks=np.roll(task.test_masks, 4, axis=2))
    assert make_run(run, inputs_of(moved, inputs.neighbors), cache=cache).record["source"] == "fit"


def test_a_batch_maps_file_holds_each_localizing_runs_maps_by_name(tmp_path):
    maps = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    runs = [{"setting": "patchcore-1", "seed": 0}, {"setting": "dn2-2", "seed": 0}]
    write_maps(tmp_path / "maps.npz", runs=runs, maps=[maps, None], ids=["a/1", "b/2"])
    read = read_maps(tmp_path / "maps.npz")
    assert sorted(read) == ["ids", "patchcore-1.seed0"]
    np.testing.assert_array_equal(read["patchcore-1.seed0"], maps)
    assert list(read["ids"]) == ["a/1", "b/2"]
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="is not a maps file"):
        read_maps(tmp_path / "broken.npz")
