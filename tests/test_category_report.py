"""A category's bootstrap tables and localization figure, read from a batch's files as the
workflow writes them (records, scores, maps, test embeddings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cap.evaluation.embeddings import Embeddings, save_embeddings
from cap.evaluation.records import write_batch, write_maps
from cap.metrics.image import score_metrics
from cap.metrics.localization import pixel_metrics
from cap.reporting.category_intervals import (
    BatchFiles,
    category_markdown,
    category_tables,
    write_category_tables,
)
from cap.reporting.localization_figure import localization_examples, plot_localization
from cap.utils.errors import DataError

TYPES = ["good"] * 6 + ["cut"] * 4 + ["hole"] * 4
SIDE = 16


@pytest.fixture
def batch(tmp_path) -> BatchFiles:
    """A category of 14 test images (6 good, 4 cut, 4 hole) with a square defect each, and
    two methods: one that localizes (2 seeds) and one that scores images only."""
    rng = np.random.default_rng(0)
    ids = [f"test/{kind}/{i:03d}.png" for i, kind in enumerate(TYPES)]
    is_anomaly = np.array([kind != "good" for kind in TYPES], dtype=np.int64)
    masks = np.zeros((len(ids), SIDE, SIDE), dtype=bool)
    for image in np.flatnonzero(is_anomaly):
        y, x = rng.integers(0, SIDE - 6, size=2)
        masks[image, y : y + 6, x : x + 6] = True
    save_embeddings(
        tmp_path / "test.h5",
        Embeddings(
            features=rng.normal(size=(len(ids), 4)).astype(np.float32),
            labels=is_anomaly,
            ids=ids,
            class_names=["good", "defect"],
            attrs={"preprocessing": "direct", "category": "part"},
            defect_type=TYPES,
            masks=masks,
        ),
    )
    identity = {"dataset": "parts", "backbone": "net", "cls": "part"}
    runs, scores, maps = [], [], []
    for seed in (0, 1):
        coarse = (rng.random((len(ids), 4, 4)) + 2.0 * masks[:, ::4, ::4]).astype(np.float32)
        values = coarse.reshape(len(ids), -1).max(axis=1) + rng.normal(0, 0.3, len(ids))
        runs.append(
            {**identity, "setting": "patchcore-1", "method": "patchcore", "seed": seed,
             **score_metrics(is_anomaly, values), **pixel_metrics(masks, coarse)}
        )  # fmt: skip
        scores.append(values)
        maps.append(coarse)  # it sees the defects
    knn = is_anomaly + rng.normal(0, 1.0, len(ids))
    runs.append(
        {
            **identity,
            "setting": "dn2-2",
            "method": "dn2",
            "seed": 0,
            **score_metrics(is_anomaly, knn),
        }
    )
    scores.append(knn)
    maps.append(None)
    files = BatchFiles(
        tmp_path / "runs.json",
        tmp_path / "scores.csv.gz",
        tmp_path / "maps.npz",
        tmp_path / "test.h5",
    )
    items = pd.DataFrame({"id": ids, "label": is_anomaly, "is_anomaly": is_anomaly})
    write_batch(
        files.records, files.scores, job={}, runs=runs, scores=scores, test=items,
        maps_path=files.maps, maps=maps,
    )  # fmt: skip
    return files


LABELS = {"parts": {"patchcore-1": "patchcore", "dn2-2": "dn2"}}


def test_the_tables_hold_each_methods_metrics_with_intervals_and_paired_differences(
    batch, tmp_path
):
    intervals, differences = category_tables([batch], LABELS, resamples=200)
    rows = intervals.set_index(["method", "metric"])
    assert list(intervals.columns[:3]) == ["dataset", "backbone", "cls"]
    assert set(intervals["cls"]) == {"part"} and set(rows.loc["patchcore"]["seeds"]) == {2}
    assert ("dn2", "pixel_auroc") not in rows.index and ("patchcore", "aupro") in rows.index
    assert {"auroc:cut", "auroc:hole"} <= set(intervals["metric"])
    for metric in ("auroc", "pixel_auroc"):
        row = rows.loc[("patchcore", metric)]
        assert row["low"] <= row["estimate"] <= row["high"]
    pair = differences.set_index(["method", "versus", "metric"]).loc[("patchcore", "dn2", "auroc")]
    expected = rows.loc[("patchcore", "auroc"), "estimate"] - rows.loc[("dn2", "auroc"), "estimate"]
    assert pair["difference"] == pytest.approx(expected)
    paths = {name: tmp_path / f"out.{name}" for name in ("intervals_csv", "differences_csv", "md")}
    write_category_tables(intervals, differences, **paths)
    text = paths["md"].read_text()
    assert "### part (parts, net)" in text and "| patchcore" in text and "cut" in text
    assert pd.read_csv(paths["intervals_csv"]).shape == intervals.shape


def test_the_pixel_estimates_are_the_records_own(batch):
    intervals, _ = category_tables([batch], LABELS, resamples=20)
    runs = json.loads(Path(batch.records).read_text())["runs"][:2]  # patchcore's two seeds
    expected = np.mean([run["aupro"] for run in runs])
    rows = intervals.set_index(["method", "metric"])
    assert rows.loc[("patchcore", "aupro"), "estimate"] == pytest.approx(expected, abs=1e-12)


def test_files_of_another_split_are_refused(batch, tmp_path):
    write_maps(tmp_path / "other.npz", runs=[], maps=[], ids=["x"] * 14)
    other = BatchFiles(batch.records, batch.scores, tmp_path / "other.npz", batch.test_embeddings)
    with pytest.raises(DataError, match="the maps of .* are not of"):
        category_tables([other], LABELS, resamples=5)


def edit_scores(path: Path, edit) -> None:
    edit(pd.read_csv(path, compression="gzip")).to_csv(path, index=False, compression="gzip")


def set_score(frame: pd.DataFrame, row: int, value: float) -> pd.DataFrame:
    frame.loc[row, "score"] = value
    return frame


def edit_maps(path: Path, edit) -> None:
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    edit(arrays)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda f: edit_scores(f.scores, lambda s: s.assign(score=-s["score"])),
         r"scores\.csv\.gz: the scores of run .* do not match the digest"),
        (lambda f: edit_scores(f.scores, lambda s: s.assign(score=0.5)),
         r"scores\.csv\.gz: the scores of run .* do not match the digest"),
        (lambda f: edit_scores(f.scores, lambda s: set_score(s, 3, np.nan)),
         r"scores\.csv\.gz: the scores of run patchcore-1 seed 0 do not match"),
        (lambda f: edit_scores(f.scores, lambda s: s.drop(index=s.index[-1])),
         r"scores\.csv\.gz: the scores of run dn2-2 seed 0 are 13, for 14 test items"),
        (lambda f: edit_maps(f.maps, lambda m: m["patchcore-1.seed1"].__imul__(-1)),
         r"maps\.npz: the maps of run patchcore-1 seed 1 do not match the digest"),
        (lambda f: f.scores.write_bytes(b"not gzip"), r"scores\.csv\.gz is not a scores file"),
        (lambda f: Path(f.records).write_text(
            Path(f.records).read_text().replace('"auroc": 0.', '"auroc": 0.1')),
         r"runs\.json was changed after it was written"),
    ],
    ids=["negated", "constant", "nan", "row-dropped", "maps-edited", "unreadable", "records"],
)  # fmt: skip
def test_scores_and_maps_are_checked_against_their_records_where_they_are_read(
    batch, tamper, message
):
    """F5-F7: what the bootstrap reads is what the runs' records measured, or it stops
    naming the file; never an interval of other numbers beside the runs table's."""
    tamper(batch)
    with pytest.raises(DataError, match=message):
        category_tables([batch], LABELS, resamples=5)


class FakeImages:
    """The test images of the batch: a grey square each."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def index_of(self, identifier: str) -> int:
        return self.ids.index(identifier)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.new("RGB", (SIDE, SIDE), (index * 10, 90, 90)), 0


def test_the_localization_figure_shows_each_type_with_each_methods_map(batch, tmp_path):
    from cap.evaluation.embeddings import load_embeddings
    from cap.evaluation.records import read_maps

    test = load_embeddings(batch.test_embeddings, feature_maps=False)
    examples = localization_examples(
        read_maps(batch.maps), {"PatchCore": "patchcore-1.seed0"}, test, FakeImages(test.ids),
        n_per_type=2,
    )  # fmt: skip
    assert [example.title.split(":")[0] for example in examples] == [
        "good", "good", "cut", "cut", "hole", "hole"
    ]  # fmt: skip
    heatmap = examples[2].heatmaps["PatchCore"]
    assert heatmap.shape == (SIDE, SIDE) and heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    np.testing.assert_array_equal(examples[2].mask, test.masks[6])
    paths = plot_localization(examples, tmp_path / "figure", title="part")
    assert [path.suffix for path in paths] == [".png", ".pdf"] and all(
        p.stat().st_size for p in paths
    )
    with pytest.raises(DataError, match="does not localize"):
        localization_examples(
            read_maps(batch.maps), {"DN2": "dn2-2.seed0"}, test, None, n_per_type=1
        )


def test_the_markdown_shows_percent_with_intervals(batch):
    intervals, differences = category_tables([batch], LABELS, resamples=50)
    text = category_markdown(intervals, differences)
    auroc = intervals.set_index(["method", "metric"]).loc[("dn2", "auroc")]
    assert (
        f"{100 * auroc['estimate']:.1f} [{100 * auroc['low']:.1f}, {100 * auroc['high']:.1f}]"
        in text
    )
