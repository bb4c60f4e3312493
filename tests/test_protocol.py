"""The evaluation glue: one-class split, neighbour file, runs, AUROC records and the CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from cap.benchmark.embeddings import Embeddings
from cap.benchmark.evaluation import (
    auroc,
    read_scores,
    summarize_records,
    write_auroc_record,
    write_scores,
)
from cap.benchmark.experiment import build_detector, fit_on_split, score_split
from cap.benchmark.neighbors import load_neighbors, save_neighbors, search_split_neighbors
from cap.benchmark.protocol import one_class_split
from cap.cli import main as cap_main
from cap.cli.evaluate import parse_assignments
from cap.detectors.search import knn_search
from cap.utils.errors import ConfigError, DataError


def embeddings(features: np.ndarray, labels: list[int], prefix: str) -> Embeddings:
    ids = [f"{prefix}/{i}" for i in range(len(labels))]
    return Embeddings(features.astype(np.float32), np.asarray(labels), ids, ["a", "b", "c"], {})


@pytest.fixture
def three_classes(make_blobs):
    """Train/test embeddings of 3 classes: blobs around 3 well-separated centres."""
    rng = np.random.default_rng(0)
    centres = 4.0 * rng.normal(size=(3, 8))
    train_labels = np.repeat([0, 1, 2], 30)
    test_labels = np.repeat([0, 1, 2], 10)
    train = centres[train_labels] + rng.normal(size=(90, 8))
    test = centres[test_labels] + rng.normal(size=(30, 8))
    return embeddings(train, train_labels.tolist(), "train"), embeddings(
        test, test_labels.tolist(), "test"
    )


def test_one_class_split_selects_the_normal_bank_and_labels_the_rest_anomalous(three_classes):
    train, test = three_classes
    split = one_class_split(train, test, normal_class=1)
    np.testing.assert_array_equal(split.bank, train.features[30:60])
    assert split.bank_ids == train.ids[30:60]
    np.testing.assert_array_equal(split.is_anomaly, (test.labels != 1).astype(int))
    assert split.test_ids == test.ids


def test_all_normal_training_split_uses_the_test_labels_as_anomaly_labels(three_classes):
    train, test = three_classes  # MVTec: labels are 0 = good, >0 = defect
    split = one_class_split(train, test, normal_class=None)
    assert len(split.bank) == len(train.features)
    np.testing.assert_array_equal(split.is_anomaly, (test.labels != 0).astype(int))


def test_split_errors_name_the_problem(three_classes):
    train, test = three_classes
    with pytest.raises(ConfigError, match="normal class 7 has no training images"):
        one_class_split(train, test, normal_class=7)
    narrow = embeddings(test.features[:, :4], test.labels.tolist(), "test")
    with pytest.raises(DataError, match="differ in dimension: 8 vs 4"):
        one_class_split(train, narrow, normal_class=0)
    only_normal = embeddings(test.features[:10], [0] * 10, "test")
    with pytest.raises(DataError, match="both normal and anomalous.*only label 0"):
        one_class_split(train, only_normal, normal_class=0)


def test_an_empty_test_split_is_refused(three_classes):
    train, test = three_classes
    empty = embeddings(test.features[:0], [], "test")
    with pytest.raises(DataError, match="both normal and anomalous.*no image"):
        one_class_split(train, empty, normal_class=0)


def test_neighbors_are_searched_once_and_sliced_for_any_k(three_classes, tmp_path):
    split = one_class_split(*three_classes, normal_class=0)
    neighbors = search_split_neighbors(split, k_max=8)
    _, direct = knn_search(split.bank, k=8)
    np.testing.assert_array_equal(neighbors.train_indices, direct)
    save_neighbors(tmp_path / "nb.h5", neighbors, k_max=8)
    loaded = load_neighbors(tmp_path / "nb.h5", k=3)
    np.testing.assert_array_equal(loaded.train_indices, direct[:, :3])
    np.testing.assert_array_equal(loaded.test_indices, neighbors.test_indices[:, :3])
    with pytest.raises(ConfigError, match="K=9 exceeds the 8 neighbours"):
        load_neighbors(tmp_path / "nb.h5", k=9)
    with pytest.raises(ConfigError, match="k_max=30 needs at least 31"):
        search_split_neighbors(split, k_max=30)


def test_runs_with_precomputed_neighbours_match_the_detectors_own_search(three_classes):
    split = one_class_split(*three_classes, normal_class=2)
    neighbors = search_split_neighbors(split, k_max=8)
    for method, settings in [
        ("cap", {"k": 4, "epochs": 2}),
        ("no_adaptation", {"k": 4}),
        ("dn2", {}),
    ]:
        ours = score_split(
            fit_on_split(build_detector(method, settings, 0), split, neighbors), split, neighbors
        )
        direct = build_detector(method, settings, 0).fit(split.bank).anomaly_score(split.test)
        np.testing.assert_allclose(ours, direct, rtol=1e-5, atol=1e-6)
        assert auroc(split.is_anomaly, ours) > 0.9


def test_build_detector_refuses_unknown_methods_and_settings():
    with pytest.raises(ConfigError, match="unknown method 'svdd'"):
        build_detector("svdd", {}, 0)
    with pytest.raises(ConfigError, match=r"'dn2' has no setting\(s\) lam; valid: k"):
        build_detector("dn2", {"lam": 2.0}, 0)
    assert build_detector("cap", {"k": 3}, seed=5).get_params()["seed"] == 5


def test_auroc_record_round_trip_and_summary(tmp_path):
    scores = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "label": [0, 0, 1, 2],
            "is_anomaly": [0, 0, 1, 1],
            "score": [0.1, 0.4, 0.35, 0.8],
        }
    )
    write_scores(tmp_path / "s.csv.gz", scores)
    pd.testing.assert_frame_equal(read_scores(tmp_path / "s.csv.gz"), scores)
    record = write_auroc_record(
        tmp_path / "a.json", scores, {"dataset": "x", "cls": "bottle", "seed": 0}
    )
    assert record["auroc"] == pytest.approx(0.75) and record["n_anomalous"] == 2
    write_auroc_record(tmp_path / "b.json", scores, {"dataset": "x", "cls": "0", "seed": 0})
    summary = summarize_records([tmp_path / "a.json", tmp_path / "b.json"])
    assert list(summary["cls"]) == ["0", "bottle"]


def test_auroc_rejects_nan_scores_and_a_single_class():
    with pytest.raises(DataError, match="1 anomaly scores are NaN"):
        auroc(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(DataError, match="both normal"):
        auroc(np.array([1, 1]), np.array([0.1, 0.2]))


def test_parse_assignments_reads_yaml_values():
    assert parse_assignments(["k=32", "lam=0.1", "lr_decay=null", "head=linear"]) == {
        "k": 32,
        "lam": 0.1,
        "lr_decay": None,
        "head": "linear",
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignments(["k"])


def write_store(path, emb: Embeddings, backbone: str = "fake") -> str:
    with h5py.File(path, "w") as store:
        store["features"], store["labels"] = emb.features, emb.labels
        store["ids"] = np.array(emb.ids, dtype=h5py.string_dtype())
        store.attrs["backbone"] = backbone
    return str(path)


def test_cli_from_embeddings_to_auroc_clips_k_to_a_small_bank(three_classes, tmp_path):
    train, test = (
        write_store(tmp_path / f"{s}.h5", e)
        for s, e in zip(("train", "test"), three_classes, strict=True)
    )
    split = ["--train-emb", train, "--test-emb", test, "--backbone", "fake", "--normal-class", "0"]
    assert cap_main(["neighbors", *split, "--k-max", "64", "--out", str(tmp_path / "nb.h5")]) == 2
    assert not (tmp_path / "nb.h5").exists()  # the error wrote nothing
    assert (
        cap_main(
            ["neighbors", *split, "--k-max", "64", "--clip-k", "--out", str(tmp_path / "nb.h5")]
        )
        == 0
    )
    assert load_neighbors(tmp_path / "nb.h5").k_max == 29
    run = [
        *split,
        "--neighbors",
        str(tmp_path / "nb.h5"),
        "--method",
        "cap",
        "--set",
        "k=64",
        "--set",
        "epochs=1",
        "--clip-k",
    ]
    assert (
        cap_main(
            [
                "train",
                *run,
                "--out-model",
                str(tmp_path / "m.pt"),
                "--out-history",
                str(tmp_path / "h.json"),
            ]
        )
        == 0
    )
    assert len(json.loads((tmp_path / "h.json").read_text())) == 1
    assert (
        cap_main(
            ["score", *run, "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "s.csv.gz")]
        )
        == 0
    )
    assert (
        cap_main(
            [
                "auroc",
                "--scores",
                str(tmp_path / "s.csv.gz"),
                "--tag",
                "cls=0",
                "--tag",
                "seed=0",
                "--out",
                str(tmp_path / "a.json"),
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["cls"] == "0" and record["seed"] == 0 and record["auroc"] > 0.9
    assert (
        cap_main(
            [
                "neighbors",
                *split[:4],
                "--backbone",
                "resnet152",
                "--normal-class",
                "0",
                "--k-max",
                "4",
                "--out",
                str(tmp_path / "x.h5"),
            ]
        )
        == 2
    )  # refuses to mix backbones
