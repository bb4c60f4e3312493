"""Figures (score curves, attention, anomaly maps) and the examples built for them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cap.reporting.figure_examples import anomaly_map_examples, attention_examples
from cap.reporting.figures import (
    BANK_PANEL_IN,
    DPI,
    SCORE_CURVES_SIZE,
    AnomalyMapExample,
    AttentionExample,
    anomaly_map,
    anomaly_maps_figure_size,
    attention_figure_size,
    plot_anomaly_maps,
    plot_attention,
    plot_bank_curves,
    plot_score_curves,
)
from cap.utils.errors import DataError


def pixels(size_in: tuple[float, float]) -> tuple[int, int]:
    return round(size_in[0] * DPI), round(size_in[1] * DPI)


def check_outputs(paths: list[Path], size_in: tuple[float, float]) -> None:
    """A PNG of the expected pixel size that is not blank, and a non-empty PDF."""
    png, pdf = paths
    assert (png.suffix, pdf.suffix) == (".png", ".pdf")
    with Image.open(png) as image:
        assert image.size == pixels(size_in)
        assert np.asarray(image.convert("L")).std() > 1.0
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000


def solid(value: int, size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), (value, 255 - value, 0))


def test_score_curves(tmp_path):
    histories = {
        lam: [
            [
                {
                    "epoch": e,
                    "score_normal_mean": 0.1,
                    "score_anomaly_mean": seed + e * float(lam) / 10,
                }
                for e in range(1, 6)
            ]
            for seed in range(1 if lam == "0" else 3)
        ]
        for lam in ("0", "0.1", "2")
    }
    check_outputs(
        plot_score_curves(histories, tmp_path / "curves", title="CIFAR-10 class 0"),
        SCORE_CURVES_SIZE,
    )


def test_score_curves_need_monitored_histories(tmp_path):
    with pytest.raises(DataError, match="score_anomaly_mean"):
        plot_score_curves(
            {"2": [[{"epoch": 1, "score_normal_mean": 0.1}]]}, tmp_path / "x", title=""
        )
    assert not list(tmp_path.iterdir())


def test_bank_curves_panel_per_class_and_their_mean(tmp_path):
    rows = [
        {"cls": cls, "class_name": f"c{cls}", "setting": f"{method}{n}", "seed": seed,
         "n_train": n, "auroc": 0.7 + 0.02 * np.log10(n) + 0.01 * seed}
        for cls in ("0", "3", "5", "8") for n in (200, 1000, 5000)
        for method, seeds in (("cap", 3), ("na", 1)) for seed in range(seeds)
    ]  # fmt: skip
    curves = {
        "CAP": ["cap200", "cap1000", "cap5000"],
        "no adaptation": ["na200", "na1000", "na5000"],
    }
    paths = plot_bank_curves(pd.DataFrame(rows), curves, tmp_path / "sizes", title="bank size")
    check_outputs(paths, (3 * BANK_PANEL_IN[0], 2 * BANK_PANEL_IN[1]))  # 5 panels, 3 per row
    with pytest.raises(DataError, match="no runs"):
        plot_bank_curves(pd.DataFrame(rows).iloc[0:0], curves, tmp_path / "x", title="")


def attention_example(k: int, title: str = "test") -> AttentionExample:
    weights = np.linspace(1, 2, k) / np.linspace(1, 2, k).sum()
    return AttentionExample(
        solid(10), [solid(20 * j) for j in range(k)], weights, np.full(k, 1 / k), title
    )


def test_attention_figure_size_follows_rows_and_neighbours(tmp_path):
    for n, k in ((1, 8), (3, 4)):
        paths = plot_attention([attention_example(k) for _ in range(n)], tmp_path / f"attention{n}")
        check_outputs(paths, attention_figure_size(n, k))
    assert attention_figure_size(3, 4)[1] > attention_figure_size(1, 8)[1]


def test_attention_rejects_mismatched_weights(tmp_path):
    broken = attention_example(4)
    broken = AttentionExample(
        broken.test_image,
        broken.neighbor_images,
        broken.weights_attention[:3],
        broken.weights_uniform,
        "broken",
    )
    with pytest.raises(DataError, match="broken"):
        plot_attention([attention_example(4), broken], tmp_path / "x")


def coarse_map(z, z_hat_n, f):
    """|cos(z, f_hw) − cos(ẑⁿ, f_hw)| by an explicit loop over positions."""
    out = np.zeros(f.shape[:2])
    for h, w in np.ndindex(*f.shape[:2]):
        v = f[h, w]
        cos = [v @ u / (np.linalg.norm(v) * np.linalg.norm(u)) for u in (z, z_hat_n)]
        out[h, w] = abs(cos[0] - cos[1])
    return out


def test_anomaly_map_matches_direct_computation():
    rng = np.random.default_rng(0)
    z, z_hat_n, f = (
        rng.normal(size=16),
        rng.normal(size=16),
        rng.normal(size=(7, 7, 16)).astype(np.float16),
    )
    expected = coarse_map(z, z_hat_n, f.astype(np.float64))
    np.testing.assert_allclose(anomaly_map(z, z_hat_n, f, size=7), expected, atol=1e-5)
    upsampled = anomaly_map(z, z_hat_n, f)
    assert upsampled.shape == (224, 224) and upsampled.dtype == np.float32
    assert expected.min() - 1e-5 <= upsampled.min() and upsampled.max() <= expected.max() + 1e-5
    np.testing.assert_allclose(upsampled.mean(), expected.mean(), atol=0.02)


def test_anomaly_map_peaks_where_the_feature_map_disagrees():
    z = np.array([1.0, 0.0, 0.0])
    z_hat_n = np.array([1.0, 0.0, 0.0])
    f = np.tile([1.0, 1.0, 1.0], (7, 7, 1))
    f[2, 5] = [0.0, 1.0, 0.0]  # orthogonal to z: still equal cosines → 0 everywhere
    assert np.allclose(anomaly_map(z, z_hat_n, f), 0.0)
    z_hat_n = np.array([0.0, 1.0, 0.0])
    heat = anomaly_map(z, z_hat_n, f)
    row, column = np.unravel_index(np.argmax(heat), heat.shape)
    assert (row // 32, column // 32) == (2, 5)


def test_anomaly_map_rejects_mismatched_dimensions():
    with pytest.raises(DataError, match="feature map"):
        anomaly_map(np.ones(4), np.ones(4), np.ones((7, 7, 5)))


@pytest.mark.parametrize("with_masks", [False, True])
def test_anomaly_maps_figure(tmp_path, with_masks):
    rng = np.random.default_rng(1)
    mask = np.zeros((224, 224), dtype=bool)
    mask[40:90, 100:160] = True
    examples = [
        AnomalyMapExample(
            solid(40, 224), rng.random((224, 224)), mask if with_masks and i else None, f"ex {i}"
        )
        for i in range(3)
    ]
    check_outputs(
        plot_anomaly_maps(examples, tmp_path / "maps"), anomaly_maps_figure_size(3, with_masks)
    )


# ----------------------------------------------------------- example selection


class FakeImages:
    """Duck-typed ImageDataset: image i is a solid colour encoding i; masks optional."""

    def __init__(self, ids: list[str], with_masks: bool = False) -> None:
        self.ids = ids
        self.with_masks = with_masks

    def __getitem__(self, index: int):
        return solid(index, size=40), 0

    def index_of(self, identifier: str) -> int:
        return self.ids.index(identifier)

    def mask(self, index: int):
        if not self.with_masks:
            return None
        mask = np.zeros((40, 40), dtype=bool)
        mask[:, :20] = True
        return mask


class FakeDetector:
    """Duck-typed CAPDetector: attention weights grow with feature 0 of the query."""

    def __init__(self, bank: np.ndarray, k: int) -> None:
        self.bank, self.k = bank, k

    def get_params(self) -> dict:
        return {"k": self.k}

    def neighbor_weights(self, X, *, neighbors):
        assert neighbors.shape == (len(X), self.k)
        sharpness = X[:, :1] * np.arange(self.k)  # (n, k)
        weights = np.exp(-sharpness)
        return weights / weights.sum(axis=1, keepdims=True)

    def project(self, X, *, neighbors):
        assert neighbors.shape == (len(X), self.k)
        return 2 * X, self.bank[neighbors].mean(axis=1)

    def anomaly_score(self, X, *, neighbors):
        z_hat, z_hat_n = self.project(X, neighbors=neighbors)
        cosine = (
            (z_hat * z_hat_n).sum(axis=1)
            / np.linalg.norm(z_hat, axis=1)
            / np.linalg.norm(z_hat_n, axis=1)
        )
        return 1.0 - cosine


@pytest.fixture
def run():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(20, 6)).astype(np.float32)
    test = rng.normal(size=(10, 6)).astype(np.float32)
    test[:, 0] = np.arange(10) / 10  # item i's attention is sharper for larger i
    is_anomaly = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 0])
    task = SimpleNamespace(
        bank=bank,
        bank_ids=[f"train{j}" for j in range(20)],
        test=test,
        test_ids=[f"test{i}" for i in range(10)],
        test_labels=is_anomaly * 2,
        is_anomaly=is_anomaly,
    )
    test_indices = np.argsort(-(test @ bank.T), axis=1)[:, :5]  # (10, 5)
    neighbors = SimpleNamespace(train_indices=None, test_indices=test_indices, k_max=5)
    return SimpleNamespace(
        task=task, neighbors=neighbors, detector=FakeDetector(bank, k=4), rng=rng
    )


def test_attention_examples_pick_the_least_uniform_normal_items(run):
    train_images = FakeImages(
        [f"train{j}" for j in reversed(range(20))]
    )  # order differs from the bank
    test_images = FakeImages([f"test{i}" for i in range(10)])
    examples = attention_examples(
        run.detector,
        run.task,
        run.neighbors,
        train_images,
        test_images,
        n_examples=2,
        n_neighbors=3,
    )
    assert [e.title for e in examples] == [
        "test4",
        "test9",
    ]  # the sharpest normal ones, in test order
    first = examples[0]
    assert first.test_image.getpixel((0, 0))[0] == test_images.index_of("test4")
    expected_rows = run.neighbors.test_indices[4, :3]
    assert [im.getpixel((0, 0))[0] for im in first.neighbor_images] == [
        train_images.index_of(f"train{j}") for j in expected_rows
    ]
    full = run.detector.neighbor_weights(
        run.task.test[[4]], neighbors=run.neighbors.test_indices[[4], :4]
    )[0]
    np.testing.assert_allclose(first.weights_attention, full[:3])
    np.testing.assert_allclose(first.weights_uniform, np.full(3, 0.25))


def test_anomaly_map_examples_use_stored_feature_maps(run):
    map_ids = ["test1", "test2", "test6", "test7", "test8"]  # test0 (normal) has none
    feature_maps = run.rng.normal(size=(5, 7, 7, 6)).astype(np.float16)
    embeddings = SimpleNamespace(
        feature_maps=feature_maps,
        feature_map_ids=map_ids,
        defect_type=None,
        labels=run.task.test_labels,
        class_names=["good", "x", "defect"],
        attrs={},  # a file of before preprocessings were named: the paper's
    )
    test_images = FakeImages([f"test{i}" for i in range(10)], with_masks=True)
    examples = anomaly_map_examples(
        run.detector, run.task, run.neighbors, embeddings, test_images, n_examples=3
    )
    assert [e.title.split(":")[0] for e in examples] == ["normal", "normal", "anomaly"]
    assert examples[0].title.startswith("normal: good") and examples[2].title.startswith(
        "anomaly: defect"
    )
    neighbors = run.neighbors.test_indices[[6], :4]
    z_hat_n = run.task.bank[neighbors].mean(axis=1)[0]
    np.testing.assert_allclose(
        examples[2].heatmap, anomaly_map(run.task.test[6], z_hat_n, feature_maps[2]), atol=1e-6
    )
    assert examples[2].image.size == (224, 224)
    assert (
        examples[2].mask.shape == (224, 224)
        and examples[2].mask[:, :100].all()
        and not examples[2].mask[:, 124:].any()
    )


@pytest.mark.parametrize("preprocessing", ["paper", "direct"])
def test_anomaly_map_images_and_masks_follow_the_embeddings_preprocessing(run, preprocessing):
    from cap.data.transforms import get_preprocessing, transform_mask

    embeddings = SimpleNamespace(
        feature_maps=np.ones((1, 7, 7, 6), dtype=np.float16),
        feature_map_ids=["test6"],
        defect_type=None,
        labels=run.task.test_labels,
        class_names=["good", "x", "defect"],
        attrs={"preprocessing": preprocessing},
    )
    images = FakeImages([f"test{i}" for i in range(10)], with_masks=True)
    (example,) = anomaly_map_examples(
        run.detector, run.task, run.neighbors, embeddings, images, n_examples=1
    )
    shown = get_preprocessing(preprocessing)(images[6][0])
    np.testing.assert_array_equal(np.asarray(example.image), np.asarray(shown))
    quarter = np.zeros((40, 40), dtype=bool)
    quarter[:, :10] = True  # paper: 10 × 6.4 − 16 = 48 columns; direct: 10 × 5.6 = 56
    np.testing.assert_array_equal(
        transform_mask(quarter, preprocessing=preprocessing)[0].sum(),
        48 if preprocessing == "paper" else 56,
    )
    np.testing.assert_array_equal(
        example.mask, transform_mask(images.mask(6), preprocessing=preprocessing)
    )


def test_anomaly_map_examples_fill_from_the_other_group(run):
    embeddings = SimpleNamespace(
        feature_maps=np.ones((2, 7, 7, 6), dtype=np.float16),
        feature_map_ids=["test3", "test5"],
        defect_type=None,
        labels=run.task.test_labels,
        class_names=["good", "x", "defect"],
        attrs={"preprocessing": "paper"},
    )
    examples = anomaly_map_examples(
        run.detector,
        run.task,
        run.neighbors,
        embeddings,
        FakeImages([f"test{i}" for i in range(10)]),
        n_examples=4,
    )
    assert [e.title.split(":")[0] for e in examples] == ["normal", "anomaly"]
    assert examples[0].mask is None


def test_anomaly_map_examples_need_feature_maps(run):
    embeddings = SimpleNamespace(
        feature_maps=None,
        feature_map_ids=[],
        defect_type=None,
        labels=run.task.test_labels,
        class_names=["a", "b", "c"],
        attrs={},
    )
    with pytest.raises(DataError, match="feature maps"):
        anomaly_map_examples(
            run.detector, run.task, run.neighbors, embeddings, FakeImages([]), n_examples=2
        )
