"""The evaluation glue: one-class split, neighbour file, runs, AUROC records and the CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from cap.benchmark.embeddings import Embeddings
from cap.benchmark.evaluation import (
    SCORE_COLUMNS,
    read_runs_table,
    read_scores,
    summarize_records,
    write_batch,
    write_runs_table,
)
from cap.benchmark.experiment import (
    RunSpec,
    bank_provenance,
    build_detector,
    evaluate_run,
    fit_on_split,
    score_split,
)
from cap.benchmark.neighbors import load_neighbors, save_neighbors, search_split_neighbors
from cap.benchmark.protocol import one_class_split
from cap.cli import main as cap_main
from cap.cli.evaluate import parse_assignments
from cap.detectors.search import knn_search
from cap.utils.errors import ConfigError, DataError
from cap.utils.metrics import auroc


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


def spec(method: str, settings: dict, seed: int = 0, **extra) -> RunSpec:
    return RunSpec(variant=method, method=method, seed=seed, settings=settings, **extra)


def test_runs_with_precomputed_neighbours_match_the_detectors_own_search(three_classes):
    split = one_class_split(*three_classes, normal_class=2)
    neighbors = search_split_neighbors(split, k_max=8)
    for method, settings in [
        ("cap", {"k": 4, "epochs": 2}),
        ("no_adaptation", {"k": 4}),
        ("dn2", {}),
    ]:
        run = spec(method, settings)
        ours = score_split(fit_on_split(build_detector(run, 8), split, neighbors), split, neighbors)
        direct = build_detector(run, 8).fit(split.bank).anomaly_score(split.test)
        np.testing.assert_allclose(ours, direct, rtol=1e-5, atol=1e-6)
        assert auroc(split.is_anomaly, ours) > 0.9


def test_build_detector_refuses_unknown_methods_and_settings_and_clips_k():
    with pytest.raises(ConfigError, match="unknown method 'svdd'"):
        build_detector(spec("svdd", {}), 8)
    with pytest.raises(ConfigError, match=r"'dn2' has no setting\(s\) lam; valid: k"):
        build_detector(spec("dn2", {"lam": 2.0}), 8)
    assert build_detector(spec("cap", {"k": 3}, seed=5), 8).get_params()["seed"] == 5
    assert build_detector(spec("cap", {"k": 64}), 29, clip_k=True).k == 29
    assert build_detector(spec("cap", {"k": 64}), 29).k == 64  # the fit refuses it later
    with pytest.raises(ConfigError, match="--run expects a JSON run spec"):
        RunSpec.from_json('{"variant": "cap", "method": "cap"}')  # no seed


def test_batch_files_round_trip_into_the_long_form_table(three_classes, tmp_path):
    split = one_class_split(*three_classes, normal_class=0)
    neighbors = search_split_neighbors(split, k_max=4)
    provenance = bank_provenance(split, "train.h5", 0)
    records, scores = zip(
        *(
            evaluate_run(run, split, neighbors, provenance)
            for run in (spec("cap", {"k": 4, "epochs": 1}, seed=3), spec("dn2", {"k": 2}))
        ),
        strict=True,
    )
    identity = {"dataset": "x", "backbone": "fake", "cls": "0", "n_train": len(split.bank)}
    test = pd.DataFrame(
        {"id": split.test_ids, "label": split.test_labels, "is_anomaly": split.is_anomaly}
    )
    write_batch(
        tmp_path / "b.json", tmp_path / "b.csv.gz", job={"startup_s": 1.0},
        runs=[{**identity, **r} for r in records], scores=scores, test=test,
    )  # fmt: skip
    frame = summarize_records([tmp_path / "b.json"])
    assert list(frame["variant"]) == ["cap", "dn2"] and list(frame["seed"]) == [3, 0]
    assert list(frame.columns[:6]) == ["dataset", "cls", "class_name", "variant", "method", "seed"]
    assert frame.loc[0, "k"] == 4 and frame.loc[0, "lam"] == 2.0 and pd.isna(frame.loc[1, "lam"])
    assert frame.loc[0, "fit_s"] > 0 and (frame["auroc"] > 0.9).all()
    stored = read_scores(tmp_path / "b.csv.gz")
    assert len(stored) == 2 * len(split.test) and list(stored.columns) == list(SCORE_COLUMNS)
    np.testing.assert_allclose(stored[stored["variant"] == "dn2"]["score"], scores[1], rtol=1e-6)
    write_runs_table(tmp_path / "runs.csv", frame)
    pd.testing.assert_series_equal(read_runs_table(tmp_path / "runs.csv")["auroc"], frame["auroc"])


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
        store.attrs["class_names"] = json.dumps(emb.class_names)
    return str(path)


def test_cli_from_embeddings_to_the_runs_table(three_classes, tmp_path):
    train, test = (
        write_store(tmp_path / f"{s}.h5", e)
        for s, e in zip(("train", "test"), three_classes, strict=True)
    )
    split = ["--train-emb", train, "--test-emb", test, "--backbone", "fake", "--normal-class", "0"]
    neighbors = ["--neighbors", str(tmp_path / "nb.h5")]
    assert cap_main(["neighbors", *split, "--k-max", "64", "--out", neighbors[1]]) == 2
    assert not (tmp_path / "nb.h5").exists()  # the error wrote nothing
    assert cap_main(["neighbors", *split, "--k-max", "64", "--clip-k", "--out", neighbors[1]]) == 0
    assert load_neighbors(tmp_path / "nb.h5").k_max == 29
    cap_run = {"variant": "cap", "method": "cap", "seed": 0, "settings": {"k": 64, "epochs": 1}}
    model = str(tmp_path / "m.pt")
    train_args = ["train", *split, *neighbors, "--clip-k", "--out-model", model]
    assert cap_main([*train_args, f"--run={json.dumps(cap_run)}"]) == 0
    runs = [
        f"--run={json.dumps({**cap_run, 'model': model})}",
        '--run={"variant": "dn2", "method": "dn2", "seed": 0, "settings": {"k": 2}}',
    ]
    outputs = [
        "--out-records",
        str(tmp_path / "b.json"),
        "--out-scores",
        str(tmp_path / "b.csv.gz"),
    ]
    tags = ["--tag", "dataset=x", "--tag", "cls=0"]
    assert cap_main(["evaluate", *split, *neighbors, "--clip-k", *runs, *tags, *outputs]) == 0
    batch = json.loads((tmp_path / "b.json").read_text())
    assert batch["job"]["startup_s"] > 0
    loaded, dn2 = batch["runs"]
    assert loaded["fit_s"] is None and loaded["settings"]["k"] == 29 and len(loaded["history"]) == 1
    assert (loaded["class_name"], loaded["cls"], loaded["n_train"]) == ("a", "0", 30)
    assert dn2["auroc"] > 0.9 and dn2["history"] is None
    assert (
        cap_main(["aggregate", str(tmp_path / "b.json"), "--out", str(tmp_path / "runs.csv")]) == 0
    )
    assert len(read_runs_table(tmp_path / "runs.csv")) == 2
    # the kept model refuses another class's bank
    other = [*split[:-1], "1"]
    assert cap_main(["neighbors", *other, "--k-max", "4", "--out", str(tmp_path / "nb1.h5")]) == 0
    evaluate_other = [
        "evaluate",
        *other,
        "--neighbors",
        str(tmp_path / "nb1.h5"),
        runs[0],
        *outputs,
    ]
    assert cap_main(evaluate_other) == 2
    wrong_backbone = [*split[:4], "--backbone", "resnet152", "--normal-class", "0"]
    assert (
        cap_main(["neighbors", *wrong_backbone, "--k-max", "4", "--out", str(tmp_path / "x.h5")])
        == 2
    )


def test_a_bank_size_keeps_the_first_images_of_the_class(three_classes):
    train, test = three_classes
    whole = one_class_split(train, test, normal_class=1)
    first = one_class_split(train, test, normal_class=1, bank_size=12)
    np.testing.assert_array_equal(first.bank, whole.bank[:12])  # nested: a prefix
    assert first.bank_ids == whole.bank_ids[:12]
    with pytest.raises(ConfigError, match="bank_size 31 needs between 1 and the 30"):
        one_class_split(train, test, normal_class=1, bank_size=31)
