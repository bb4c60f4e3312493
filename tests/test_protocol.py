"""The evaluation glue: one-class split, neighbour file, runs, AUROC records and the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from workflow_helpers import step_argv

from cap.cli import main as cap_main
from cap.detectors import CAPDetector, DN2Detector
from cap.detectors.search import knn_search
from cap.evaluation import jobs
from cap.evaluation.cache import RunCache, code_digest, fingerprint
from cap.evaluation.embeddings import Embeddings
from cap.evaluation.neighbors import (
    Neighbors,
    load_neighbors,
    save_neighbors,
    search_task_neighbors,
)
from cap.evaluation.protocol import one_class_task
from cap.evaluation.records import (
    SCORE_COLUMNS,
    read_runs_table,
    read_scores,
    summarize_records,
    write_batch,
    write_runs_table,
)
from cap.evaluation.runs import (
    RunInputs,
    bank_provenance,
    build_detector,
    fit_on_task,
    make_run,
    score_task,
)
from cap.metrics.image import auroc
from cap.utils.errors import ConfigError, DataError
from cap.utils.io import seal, unseal


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


def test_one_class_task_selects_the_normal_bank_and_labels_the_rest_anomalous(three_classes):
    train, test = three_classes
    split = one_class_task(train, test, normal_class=1)
    np.testing.assert_array_equal(split.bank, train.features[30:60])
    assert split.bank_ids == train.ids[30:60]
    np.testing.assert_array_equal(split.is_anomaly, (test.labels != 1).astype(int))
    assert split.test_ids == test.ids


def test_all_normal_training_split_uses_the_test_labels_as_anomaly_labels(three_classes):
    train, test = three_classes  # MVTec: labels are 0 = good, >0 = defect
    split = one_class_task(train, test, normal_class=None)
    assert len(split.bank) == len(train.features)
    np.testing.assert_array_equal(split.is_anomaly, (test.labels != 0).astype(int))


def test_split_errors_name_the_problem(three_classes):
    train, test = three_classes
    with pytest.raises(ConfigError, match="normal class 7 has no training images"):
        one_class_task(train, test, normal_class=7)
    narrow = embeddings(test.features[:, :4], test.labels.tolist(), "test")
    with pytest.raises(DataError, match="differ in dimension: 8 vs 4"):
        one_class_task(train, narrow, normal_class=0)
    only_normal = embeddings(test.features[:10], [0] * 10, "test")
    with pytest.raises(DataError, match="both normal and anomalous.*only label 0"):
        one_class_task(train, only_normal, normal_class=0)


def test_an_empty_test_split_is_refused(three_classes):
    train, test = three_classes
    empty = embeddings(test.features[:0], [], "test")
    with pytest.raises(DataError, match="both normal and anomalous.*no image"):
        one_class_task(train, empty, normal_class=0)


def test_neighbors_are_searched_once_and_sliced_for_any_k(three_classes, tmp_path):
    split = one_class_task(*three_classes, normal_class=0)
    neighbors = search_task_neighbors(split, k_max=8)
    _, direct = knn_search(split.bank, k=8)
    np.testing.assert_array_equal(neighbors.train_indices, direct)
    save_neighbors(tmp_path / "nb.h5", neighbors, k_max=8)
    loaded = load_neighbors(tmp_path / "nb.h5", k=3)
    np.testing.assert_array_equal(loaded.train_indices, direct[:, :3])
    np.testing.assert_array_equal(loaded.test_indices, neighbors.test_indices[:, :3])
    with pytest.raises(ConfigError, match="K=9 exceeds the 8 neighbours"):
        load_neighbors(tmp_path / "nb.h5", k=9)
    with pytest.raises(ConfigError, match="k_max=30 needs at least 31"):
        search_task_neighbors(split, k_max=30)


def spec(method: str, settings: dict, seed: int = 0, **extra) -> jobs.RunSpec:
    """A run of ``method`` on the whole bank, named by its content key."""
    key = jobs.setting_key(method, settings, "all")
    return jobs.RunSpec(setting=key, method=method, seed=seed, settings=settings, **extra)


def inputs_of(task, neighbors: Neighbors, **extra) -> RunInputs:
    return RunInputs(
        task=task,
        neighbors=neighbors,
        provenance=bank_provenance(task, "train.h5", 0),
        test_fingerprint=fingerprint(task.test, task.is_anomaly),
        **extra,
    )


def test_runs_with_precomputed_neighbours_match_the_detectors_own_search(three_classes):
    task = one_class_task(*three_classes, normal_class=2)
    neighbors = search_task_neighbors(task, k_max=8)
    for method, settings in [
        ("cap", {"k": 4, "epochs": 2}),
        ("no_adaptation", {"k": 4}),
        ("dn2", {}),
        ("mahalanobis", {}),
    ]:
        run = spec(method, settings)
        ours = score_task(fit_on_task(build_detector(run, 8), task, neighbors), task, neighbors)
        direct = build_detector(run, 8).fit(task.bank).anomaly_score(task.test)
        np.testing.assert_allclose(ours, direct, rtol=1e-5, atol=1e-6)
        assert auroc(task.is_anomaly, ours) > 0.9


def test_build_detector_refuses_unknown_methods_and_settings_and_clips_k():
    with pytest.raises(ConfigError, match="unknown method 'svdd'"):
        build_detector(spec("svdd", {}), 8)
    with pytest.raises(ConfigError, match=r"'dn2' has no setting\(s\) lam; valid: k"):
        build_detector(spec("dn2", {"lam": 2.0}), 8)
    assert build_detector(spec("cap", {"k": 3}, seed=5), 8).get_params()["seed"] == 5
    assert build_detector(spec("cap", {"k": 64}), 29, clip_k=True).k == 29
    assert build_detector(spec("cap", {"k": 64}), 29).k == 64  # the fit refuses it later


def test_batch_files_round_trip_into_the_long_form_table(three_classes, tmp_path):
    task = one_class_task(*three_classes, normal_class=0)
    inputs = inputs_of(task, search_task_neighbors(task, k_max=4))
    cap_run, dn2_run = spec("cap", {"k": 4, "epochs": 1}, seed=3), spec("dn2", {"k": 2})
    records, scores, _ = zip(*(make_run(run, inputs) for run in (cap_run, dn2_run)), strict=True)
    identity = {"dataset": "x", "backbone": "fake", "cls": "0", "n_train": len(task.bank)}
    test = pd.DataFrame(
        {"id": task.test_ids, "label": task.test_labels, "is_anomaly": task.is_anomaly}
    )
    write_batch(
        tmp_path / "b.json", tmp_path / "b.csv.gz", job={"startup_s": 1.0},
        runs=[{**identity, **r} for r in records], scores=scores, test=test,
    )  # fmt: skip
    keys = [cap_run.setting, dn2_run.setting]
    labels = {"x": dict(zip(keys, ["cap", "dn2_k2"], strict=True))}
    frame = summarize_records([tmp_path / "b.json"], labels)
    assert list(frame["variant"]) == ["cap", "dn2_k2"] and list(frame["seed"]) == [3, 0]
    assert list(frame["setting"]) == keys
    assert summarize_records([tmp_path / "b.json"])["variant"].tolist() == keys
    assert list(frame.columns[:7]) == [
        "dataset", "cls", "class_name", "variant", "setting", "method", "seed",
    ]  # fmt: skip
    assert frame.loc[0, "k"] == 4 and frame.loc[0, "lam"] == 2.0 and pd.isna(frame.loc[1, "lam"])
    assert frame.loc[0, "fit_s"] > 0 and (frame["auroc"] > 0.9).all()
    assert list(frame["chaotic"]) == [False, False]
    stored = read_scores(tmp_path / "b.csv.gz")
    assert len(stored) == 2 * len(task.test) and list(stored.columns) == list(SCORE_COLUMNS)
    dn2_scores = stored[stored["setting"] == dn2_run.setting]["score"]
    np.testing.assert_allclose(dn2_scores, scores[1], rtol=1e-6)
    write_runs_table(tmp_path / "runs.csv", frame)
    pd.testing.assert_series_equal(read_runs_table(tmp_path / "runs.csv")["auroc"], frame["auroc"])


# --------------------------------------------------------------------- the run cache


def test_a_cached_run_is_read_back_not_fitted(three_classes, tmp_path):
    task = one_class_task(*three_classes, normal_class=1)
    inputs = inputs_of(task, search_task_neighbors(task, k_max=4))
    cache = RunCache(tmp_path / "cache")
    run = spec("cap", {"k": 4, "epochs": 1}, seed=2)
    first, scores, _ = make_run(run, inputs, cache=cache)
    again, cached, _ = make_run(run, inputs, cache=cache)
    assert (first["source"], again["source"]) == ("fit", "cache")
    np.testing.assert_array_equal(scores, cached)
    assert again["auroc"] == first["auroc"] and again["fit_s"] == first["fit_s"]
    assert (
        make_run(spec("cap", {"k": 4, "epochs": 1}, seed=3), inputs, cache=cache)[0]["source"]
        == "fit"
    )  # another seed
    assert (
        make_run(spec("cap", {"k": 3, "epochs": 1}, seed=2), inputs, cache=cache)[0]["source"]
        == "fit"
    )  # another setting


def edit_json(path: Path, **fields) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda record, npy: edit_json(record, auroc=0.99), id="auroc-edited"),
        pytest.param(
            lambda record, npy: edit_json(record, settings={"k": 4, "normalize": True}),
            id="settings-edited",
        ),
        pytest.param(lambda record, npy: edit_json(record, chaotic=True), id="chaotic-edited"),
        pytest.param(lambda record, npy: edit_json(record, fit_s=0.001), id="fit-s-edited"),
        pytest.param(lambda record, npy: edit_json(record, score_s=0.001), id="score-s-edited"),
        pytest.param(lambda record, npy: np.save(npy, -np.load(npy)), id="scores-negated"),
        pytest.param(
            lambda record, npy: record.write_text(record.read_text()[:50]), id="record-truncated"
        ),
        pytest.param(lambda record, npy: npy.write_bytes(npy.read_bytes()[:100]), id="npy-cut"),
        pytest.param(lambda record, npy: npy.unlink(), id="npy-deleted"),
    ],
)
def test_a_tampered_cache_entry_is_a_miss_that_is_fitted_again(
    three_classes, tmp_path, caplog, tamper
):
    """The cache proves what it returns: an entry whose record, scores or metrics do not
    agree is not used (a warning names its file), and the run is made again."""
    task = one_class_task(*three_classes, normal_class=1)
    inputs = inputs_of(task, search_task_neighbors(task, k_max=4))
    cache = RunCache(tmp_path / "cache")
    run = spec("dn2", {"k": 4})
    first, scores, _ = make_run(run, inputs, cache=cache)
    (record,) = (tmp_path / "cache").rglob("*.json")
    tamper(record, record.with_suffix(".npy"))
    again, rescored, _ = make_run(run, inputs, cache=cache)
    assert again["source"] == "fit" and again["auroc"] == first["auroc"]
    np.testing.assert_array_equal(rescored, scores)
    assert f"run cache entry {record} is not used" in caplog.text
    assert make_run(run, inputs, cache=cache)[0]["source"] == "cache"  # the entry was replaced


def test_what_a_method_says_of_itself_comes_from_the_method_not_the_cache(three_classes, tmp_path):
    """F4: an entry re-sealed after its ``chaotic`` was edited still reads as the method
    says (``chaotic`` decides how ``cap verify`` judges the run)."""
    task = one_class_task(*three_classes, normal_class=1)
    inputs = inputs_of(task, search_task_neighbors(task, k_max=4))
    cache = RunCache(tmp_path / "cache")
    run = spec("dn2", {"k": 4})
    make_run(run, inputs, cache=cache)
    (record,) = (tmp_path / "cache").rglob("*.json")
    data, _ = unseal(json.loads(record.read_text()))
    record.write_text(json.dumps(seal({**data, "chaotic": True})))
    again, *_ = make_run(run, inputs, cache=cache)
    assert again["source"] == "cache" and again["chaotic"] is False


def test_the_cache_key_follows_the_data_a_run_reads(three_classes, tmp_path):
    task = one_class_task(*three_classes, normal_class=1)
    neighbors = search_task_neighbors(task, k_max=6)
    cache = RunCache(tmp_path / "cache")
    run = spec("no_adaptation", {"k": 4})
    make_run(run, inputs_of(task, neighbors), cache=cache)
    wider = Neighbors(  # searched deeper for another K: the first four columns are the same
        np.hstack([neighbors.train_indices, neighbors.train_indices[:, :2]]),
        np.hstack([neighbors.test_indices, neighbors.test_indices[:, :2]]),
    )
    assert make_run(run, inputs_of(task, wider), cache=cache)[0]["source"] == "cache"
    swapped = Neighbors(neighbors.train_indices, neighbors.test_indices[:, ::-1].copy())
    assert make_run(run, inputs_of(task, swapped), cache=cache)[0]["source"] == "fit"
    moved = dataclasses.replace(task, test=task.test + 1e-3)
    assert make_run(run, inputs_of(moved, neighbors), cache=cache)[0]["source"] == "fit"


def test_a_monitored_run_needs_a_monitored_entry(three_classes, tmp_path):
    task = one_class_task(*three_classes, normal_class=0)
    inputs = inputs_of(task, search_task_neighbors(task, k_max=4))
    cache = RunCache(tmp_path / "cache")
    plain = spec("cap", {"k": 4, "epochs": 1})
    make_run(plain, inputs, cache=cache)
    watched, *_ = make_run(dataclasses.replace(plain, monitor=True), inputs, cache=cache)
    assert watched["source"] == "fit" and "score_anomaly_mean" in watched["history"][0]
    assert make_run(plain, inputs, cache=cache)[0]["source"] == "cache"  # a superset serves


def test_the_code_digest_covers_a_detectors_modules_and_their_imports():
    from cap.evaluation import cache

    cap_modules = cache._import_closure({"cap.detectors.cap_detector", *cache.METRIC_MODULES})
    # not the other detectors, nor how the inputs were read (their fingerprints say that);
    # the no-adaptation module draws CAP's anomaly maps too
    assert cap_modules == {
        "cap.detectors.cap_detector", "cap.detectors.cap_model", "cap.detectors.cap_training",
        "cap.detectors.cap_choices", "cap.detectors.base", "cap.detectors.search",
        "cap.detectors.knn", "cap.detectors.settings",
        "cap.utils.errors", "cap.utils.io", "cap.metrics.localization", "cap.metrics.image",
        "cap.utils.torch_io", "cap.utils.validation",
    }  # fmt: skip
    assert code_digest(CAPDetector) != code_digest(DN2Detector)


def test_the_code_digest_follows_a_change_to_an_imported_module(tmp_path, monkeypatch):
    from cap.evaluation import cache

    modules = cache._import_closure({"cap.detectors.knn"})
    assert "cap.utils.validation" in modules
    before = cache._digest(modules)
    edited = tmp_path / "validation.py"  # a module DN2 imports, one byte added
    edited.write_bytes(Path(cache._origin("cap.utils.validation")).read_bytes() + b"\n")
    origin = cache._origin
    monkeypatch.setattr(
        cache, "_origin", lambda n: str(edited) if n.endswith("validation") else origin(n)
    )
    assert cache._digest(modules) != before


def test_auroc_rejects_nan_scores_and_a_single_class():
    with pytest.raises(DataError, match="1 anomaly scores are NaN"):
        auroc(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(DataError, match="both normal"):
        auroc(np.array([1, 1]), np.array([0.1, 0.2]))


def write_store(path, emb: Embeddings, backbone: str = "fake") -> str:
    with h5py.File(path, "w") as store:
        store["features"], store["labels"] = emb.features, emb.labels
        store["ids"] = np.array(emb.ids, dtype=h5py.string_dtype())
        store.attrs["backbone"] = backbone
        store.attrs["preprocessing"] = "direct"
        store.attrs["class_names"] = json.dumps(emb.class_names)
    return str(path)


def test_cli_from_embeddings_to_the_runs_table(three_classes, tmp_path):
    train, test = (
        write_store(tmp_path / f"{s}.h5", e)
        for s, e in zip(("train", "test"), three_classes, strict=True)
    )
    task = jobs.TaskSpec(train, test, normal_class=0, backbone="fake")
    nb = str(tmp_path / "nb.h5")

    def cap(step: str, job) -> int:
        return cap_main(step_argv(step, job, tmp_path))

    assert cap("neighbors", jobs.NeighborsJob(task, k_max=64, out=nb)) == 2
    assert not (tmp_path / "nb.h5").exists()  # the error wrote nothing
    assert cap("neighbors", jobs.NeighborsJob(task, k_max=64, out=nb, clip_k=True)) == 0
    assert load_neighbors(nb).k_max == 29
    cache = str(tmp_path / "cache")
    cap_run = spec("cap", {"k": 64, "epochs": 1})
    model = str(tmp_path / "m.pt")
    assert cap("train", jobs.TrainJob(task, nb, cap_run, model, cache=cache, clip_k=True)) == 0
    dn2_run = spec("dn2", {"k": 2})
    runs = (dataclasses.replace(cap_run, model=model), dn2_run)
    identity = jobs.Identity(dataset="off", backbone="fake", cls="0")  # "off" stays a name
    records, scores = str(tmp_path / "b.json"), str(tmp_path / "b.csv.gz")
    evaluate = jobs.EvaluateJob(task, nb, runs, identity, records, scores, cache, clip_k=True)
    assert cap("evaluate", evaluate) == 0
    batch = json.loads((tmp_path / "b.json").read_text())
    assert batch["job"]["startup_s"] > 0 and batch["job"]["fitted"] == [f"{dn2_run.setting}/seed0"]
    cached, dn2 = batch["runs"]
    assert cached["source"] == "cache" and cached["settings"]["k"] == 29  # fitted by `train`
    assert len(cached["history"]) == 1 and cached["fit_s"] > 0
    assert (cached["class_name"], cached["cls"], cached["n_train"]) == ("a", "0", 30)
    assert dn2["auroc"] > 0.9 and dn2["history"] is None and dn2["preprocessing"] == "direct"
    assert dn2["dataset"] == "off"  # read as text, not YAML's False
    # without the cache the kept model is loaded, and it refuses another class's bank
    uncached = dataclasses.replace(evaluate, cache=None)
    assert cap("evaluate", uncached) == 0
    assert json.loads((tmp_path / "b.json").read_text())["runs"][0]["source"] == "model"
    other = dataclasses.replace(task, normal_class=1)
    nb1 = str(tmp_path / "nb1.h5")
    assert cap("neighbors", jobs.NeighborsJob(other, k_max=4, out=nb1)) == 0
    assert cap("evaluate", dataclasses.replace(uncached, task=other, neighbors=nb1)) == 2
    wrong_backbone = dataclasses.replace(task, backbone="resnet152")
    assert cap("neighbors", jobs.NeighborsJob(wrong_backbone, 4, str(tmp_path / "x.h5"))) == 2
    (tmp_path / "bad.json").write_text('{"task": 3}')
    assert cap_main(["evaluate", str(tmp_path / "bad.json")]) == 2


def test_a_bank_size_keeps_the_first_images_of_the_class(three_classes):
    train, test = three_classes
    whole = one_class_task(train, test, normal_class=1)
    first = one_class_task(train, test, normal_class=1, bank_size=12)
    np.testing.assert_array_equal(first.bank, whole.bank[:12])  # nested: a prefix
    assert first.bank_ids == whole.bank_ids[:12]
    with pytest.raises(ConfigError, match="bank_size 31 needs between 1 and the 30"):
        one_class_task(train, test, normal_class=1, bank_size=31)
