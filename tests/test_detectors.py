"""Detectors: registry, scikit-learn conventions, scoring paths, persistence, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from assets import needs_pyod
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from cap import (
    DETECTORS,
    BaseDetector,
    CAPDetector,
    CAPModel,
    DN2Detector,
    NoAdaptationDetector,
    make_detector,
)
from cap.detectors import (
    KNNDetector,
    MahalanobisDetector,
    PyODDetector,
    TrainableDetector,
    detector_names,
)
from cap.detectors.cap_training import TrainingSettings
from cap.detectors.search import knn_search
from cap.utils.errors import ConfigError, DataError, MissingResourceError, NotFittedError

pytestmark = pytest.mark.usefixtures("single_thread_math")

#: CAP's settings in its own tests: fast on the synthetic blobs.
CAP_FAST = {"k": 8, "epochs": 2, "device": "cpu"}

#: The methods that compare a query with its k nearest normal features.
KNN_METHODS = sorted(name for name, cls in DETECTORS.items() if issubclass(cls, KNNDetector))


def fitting(methods: list[str]) -> list:
    """``methods`` as test parameters; fitting ``pyod`` needs the optional pyod package."""
    return [
        pytest.param(method, marks=[needs_pyod] if method == "pyod" else []) for method in methods
    ]


def _fast(**overrides) -> CAPDetector:
    return CAPDetector(**{**CAP_FAST, **overrides})


def small_detector(method: str) -> BaseDetector:
    """The detector of ``method`` with its own settings for tiny data."""
    return make_detector(method, **DETECTORS[method].get_test_params())


@pytest.fixture(scope="module")
def fitted(make_blobs) -> tuple[CAPDetector, object]:
    """A CAPDetector fitted once on the default blobs, shared by read-only tests."""
    data = make_blobs()
    return _fast(epochs=3).fit(data.bank), data


# --------------------------------------------------------------- registry and conventions


@pytest.mark.parametrize("method", sorted(DETECTORS))
def test_every_detector_declares_its_settings_and_registers_by_name(method: str) -> None:
    cls = DETECTORS[method]
    assert cls.name == method and list(cls.declared_settings) == list(cls.default_params())
    assert all(param.description for param in cls.declared_settings.values())
    assert set(cls.get_test_params()) <= set(cls.default_params())
    assert cls.trainable == issubclass(cls, TrainableDetector)


def test_a_class_that_leaves_a_setting_undeclared_is_not_registered() -> None:
    with pytest.raises(TypeError, match=r"undeclared \['k'\]"):

        class Undeclared(KNNDetector, name="undeclared"):
            def __init__(self, *, k: int = 1) -> None:
                self.k = k

    assert "undeclared" not in DETECTORS


@pytest.mark.parametrize("method", fitting(sorted(DETECTORS)))
def test_every_detector_separates_synthetic_anomalies(method: str, blobs) -> None:
    detector = small_detector(method)
    assert detector.fit(blobs.bank) is detector
    assert detector.n_features_in_ == blobs.bank.shape[1]
    assert detector.bank_.dtype == np.float32
    scores = detector.anomaly_score(blobs.test)
    assert scores.shape == (len(blobs.test),) and np.isfinite(scores).all()
    assert roc_auc_score(blobs.is_anomaly, scores) >= 0.95


@pytest.mark.parametrize("method", sorted(DETECTORS))
def test_init_only_stores_settings(method: str) -> None:
    cls = DETECTORS[method]
    if not cls._param_names():  # a method without settings
        assert vars(cls()) == {}
        return
    first = cls._param_names()[0]  # k, or pyod's model: checked before pyod is imported
    detector = cls(**{first: 3.5})
    assert detector.get_params()[first] == 3.5
    assert not [name for name in vars(detector) if name.endswith("_")]
    with pytest.raises(ConfigError, match=f"{cls.__name__}.{first} must be"):
        detector.fit(np.ones((5, 3)))


@pytest.mark.parametrize("method", sorted(DETECTORS))
def test_scikit_learn_clone_copies_every_detector(method: str) -> None:
    detector = small_detector(method)
    copy = clone(detector)
    assert type(copy) is type(detector) and copy is not detector
    assert copy.get_params() == detector.get_params()


@pytest.mark.parametrize("method", KNN_METHODS)
def test_knn_detectors_own_k(method: str) -> None:
    detector = make_detector(method, k=3)
    assert isinstance(detector, KNNDetector) and detector.k == 3
    assert detector.trainable == isinstance(detector, TrainableDetector)
    assert DETECTORS["cap"].trainable and not DETECTORS["dn2"].trainable


@pytest.mark.parametrize("method", fitting(sorted(DETECTORS)))
def test_an_all_zero_bank_is_refused(method: str, blobs) -> None:
    bank = blobs.bank.copy()
    bank[:] = 0.0  # a broken backbone
    with pytest.raises(DataError, match="300 all-zero row|all 300 rows of bank are all-zero"):
        small_detector(method).fit(bank)


def test_a_zero_norm_query_scores_as_an_orthogonal_item(fitted) -> None:
    detector, data = fitted
    queries = np.zeros((2, data.bank.shape[1]), dtype=np.float32)
    np.testing.assert_allclose(detector.anomaly_score(queries), 1.0, atol=1e-6)  # 1 − cos, cos = 0


def test_get_params_returns_the_init_settings() -> None:
    detector = CAPDetector(k=4, lam=0.1, batch_size=16, lr=1e-4, lr_decay=None)
    params = detector.get_params()
    assert list(params) == [
        "k", "lam", "epochs", "lr", "batch_size", "lr_decay",
        "head", "attention", "constraint", "init", "seed", "device", "matmul_precision",
    ]  # fmt: skip
    assert params["k"] == 4 and params["lam"] == 0.1 and params["lr_decay"] is None
    assert CAPDetector(**params).get_params() == params
    assert DN2Detector().get_params() == {"k": 2, "normalize": False}
    assert MahalanobisDetector().get_params() == {}
    assert PyODDetector().get_params() == {"model": "ECOD", "options": None, "seed": 0}
    assert NoAdaptationDetector().get_params() == {"k": 32}
    assert CAPDetector().get_params()["k"] == 32 and CAPDetector().get_params()["lam"] == 2.0


def test_set_params_changes_settings_and_rejects_unknown_ones() -> None:
    detector = DN2Detector().set_params(k=5)
    assert detector.k == 5
    with pytest.raises(ConfigError, match="valid: k"):
        detector.set_params(neighbours=3)


def test_make_detector_errors_list_valid_names() -> None:
    with pytest.raises(ConfigError, match=f"valid: {', '.join(detector_names())}$"):
        make_detector("panda")
    with pytest.raises(ConfigError, match=r"no setting.*lambda.*valid: k, lam"):
        make_detector("cap", **{"lambda": 2.0})


def test_base_detector_is_abstract() -> None:
    with pytest.raises(TypeError):
        BaseDetector()


# ----------------------------------------------------------------------------- baselines


def test_no_adaptation_is_eq8_with_identity_head_and_plain_mean(blobs) -> None:
    detector = NoAdaptationDetector(k=5).fit(blobs.bank)
    scores = detector.anomaly_score(blobs.test)
    _, index = knn_search(blobs.bank, blobs.test, k=5)
    mean = blobs.bank[index].mean(axis=1)
    cosine = (
        (blobs.test * mean).sum(1)
        / np.linalg.norm(blobs.test, axis=1)
        / np.linalg.norm(mean, axis=1)
    )
    np.testing.assert_allclose(scores, 1 - cosine, atol=1e-5)
    model = CAPModel(blobs.bank.shape[1], attention=False, init="identity")
    as_model = model.anomaly_score(
        torch.from_numpy(blobs.test), torch.from_numpy(blobs.bank[index])
    )
    np.testing.assert_allclose(scores, as_model.detach().numpy(), atol=1e-5)


def test_dn2_sums_squared_distances_to_the_nearest_items(blobs) -> None:
    scores = DN2Detector(k=3).fit(blobs.bank).anomaly_score(blobs.test)
    squared = ((blobs.test[:, None] - blobs.bank[None]) ** 2).sum(-1)
    np.testing.assert_allclose(scores, np.sort(squared, axis=1)[:, :3].sum(1), rtol=1e-4)


def test_baselines_use_precomputed_neighbors(blobs) -> None:
    _, index = knn_search(blobs.bank, blobs.test, k=9)
    detector = NoAdaptationDetector(k=4).fit(blobs.bank)
    np.testing.assert_array_equal(
        detector.anomaly_score(blobs.test, neighbors=index), detector.anomaly_score(blobs.test)
    )
    reversed_order = detector.anomaly_score(blobs.test, neighbors=index[:, ::-1])
    assert not np.allclose(reversed_order, detector.anomaly_score(blobs.test))


# ------------------------------------------------------------------------------- CAP


def test_cap_fast_scoring_equals_projecting_each_query_separately(fitted) -> None:
    detector, data = fitted
    _, index = knn_search(data.bank, data.test, k=detector.k)
    with torch.no_grad():
        naive = detector.model_.anomaly_score(
            torch.from_numpy(data.test), torch.from_numpy(data.bank[index])
        )
    np.testing.assert_allclose(detector.anomaly_score(data.test), naive.numpy(), atol=1e-5)


def test_cap_project_and_weights_agree_with_the_scores(fitted) -> None:
    detector, data = fitted
    z_hat, z_hat_n = detector.project(data.test)
    assert z_hat.shape == z_hat_n.shape == data.test.shape
    cosine = (
        (z_hat * z_hat_n).sum(1) / np.linalg.norm(z_hat, axis=1) / np.linalg.norm(z_hat_n, axis=1)
    )
    np.testing.assert_allclose(detector.anomaly_score(data.test), 1 - cosine, atol=1e-5)
    weights = detector.neighbor_weights(data.test)
    assert weights.shape == (len(data.test), detector.k)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    assert (weights > 0).all()


def test_cap_uses_precomputed_neighbors_like_searched_ones(blobs) -> None:
    _, train_index = knn_search(blobs.bank, k=12)
    _, test_index = knn_search(blobs.bank, blobs.test, k=12)
    searched = _fast().fit(blobs.bank)
    given = _fast().fit(blobs.bank, neighbors=train_index)
    expected = searched.anomaly_score(blobs.test)
    np.testing.assert_array_equal(given.anomaly_score(blobs.test, neighbors=test_index), expected)
    np.testing.assert_array_equal(
        given.neighbor_weights(blobs.test, neighbors=test_index),
        searched.neighbor_weights(blobs.test),
    )
    shuffled = _fast().fit(blobs.bank, neighbors=train_index[:, ::-1])
    assert not np.array_equal(shuffled.anomaly_score(blobs.test), expected)


def test_cap_history_records_every_epoch(blobs) -> None:
    detector = _fast(epochs=3).fit(blobs.bank)
    assert [record["epoch"] for record in detector.history_] == [1, 2, 3]
    assert set(detector.history_[0]) == {"epoch", "loss", "similarity", "constraint", "lr"}
    np.testing.assert_allclose([r["lr"] for r in detector.history_], [5e-4, 4.5e-4, 4.05e-4])
    for record in detector.history_:
        assert record["loss"] == pytest.approx(
            record["similarity"] + 2.0 * record["constraint"], rel=1e-4
        )
    assert detector.history_[-1]["loss"] < detector.history_[0]["loss"]
    constant = _fast(epochs=2, lr_decay=None).fit(blobs.bank)
    assert [r["lr"] for r in constant.history_] == [5e-4, 5e-4]


@pytest.mark.parametrize("with_neighbors", [False, True])
def test_cap_monitor_summarises_test_scores_per_epoch(blobs, with_neighbors: bool) -> None:
    monitor = (blobs.test, blobs.is_anomaly)
    if with_neighbors:
        monitor += (knn_search(blobs.bank, blobs.test, k=8)[1],)
    detector = _fast().fit(blobs.bank, monitor=monitor)
    last = detector.history_[-1]
    assert {
        "score_normal_mean",
        "score_normal_std",
        "score_anomaly_mean",
        "score_anomaly_std",
        "auroc",
    } <= set(last)
    scores = detector.anomaly_score(blobs.test)
    assert last["auroc"] == pytest.approx(roc_auc_score(blobs.is_anomaly, scores))
    assert last["score_anomaly_mean"] == pytest.approx(
        scores[blobs.is_anomaly == 1].mean(), rel=1e-5
    )
    assert last["score_normal_std"] == pytest.approx(scores[blobs.is_anomaly == 0].std(), rel=1e-4)
    json.dumps(detector.history_)
    unmonitored = _fast().fit(blobs.bank)
    np.testing.assert_array_equal(
        unmonitored.anomaly_score(blobs.test), scores
    )  # monitoring changes nothing


def test_cap_training_settings_are_the_detectors_settings_of_the_same_names() -> None:
    detector = CAPDetector(lr=1e-3, lr_decay=None, batch_size=16, seed=5, matmul_precision="bf16")
    settings = TrainingSettings.from_params(detector.get_params())
    assert dataclasses.asdict(settings) == {
        field.name: getattr(detector, field.name) for field in dataclasses.fields(settings)
    }
    assert {field.name for field in dataclasses.fields(settings)} < set(detector.get_params())


def test_cap_same_seed_gives_identical_scores(blobs) -> None:
    first = _fast(seed=3).fit(blobs.bank).anomaly_score(blobs.test)
    second = _fast(seed=3).fit(blobs.bank).anomaly_score(blobs.test)
    other = _fast(seed=4).fit(blobs.bank).anomaly_score(blobs.test)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(
    "settings",
    [
        {"head": "linear_relu"},
        {"head": "linear_relu_linear"},
        {"attention": False},
        {"constraint": "sq_l2"},
        {"init": "identity"},
    ],
)
def test_cap_variants_train_and_separate(blobs, settings) -> None:
    detector = _fast(**settings).fit(blobs.bank)
    assert roc_auc_score(blobs.is_anomaly, detector.anomaly_score(blobs.test)) >= 0.9


def test_cap_fit_leaves_the_bank_unchanged(blobs) -> None:
    bank = blobs.bank.copy()
    _fast().fit(bank)
    np.testing.assert_array_equal(bank, blobs.bank)


# ------------------------------------------------------------------------- persistence


def test_cap_save_and_load_round_trip(fitted, tmp_path) -> None:
    detector, data = fitted
    path = tmp_path / "model.pt"
    detector.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left behind
    loaded = CAPDetector.load(path)
    np.testing.assert_array_equal(
        loaded.anomaly_score(data.test), detector.anomaly_score(data.test)
    )
    assert loaded.get_params() == detector.get_params()
    assert loaded.history_ == detector.history_
    np.testing.assert_array_equal(loaded.bank_, detector.bank_)


def test_cap_saved_without_bank_needs_one_of_the_right_dimension(fitted, tmp_path) -> None:
    detector, data = fitted
    path = tmp_path / "model.pt"
    detector.save(path, include_bank=False)
    with pytest.raises(DataError, match="saved without its bank"):
        CAPDetector.load(path)
    with pytest.raises(DataError, match=r"3 features per row but the model .* was trained on 16"):
        CAPDetector.load(path, bank=data.bank[:, :3])
    loaded = CAPDetector.load(path, bank=data.bank)
    np.testing.assert_array_equal(
        loaded.anomaly_score(data.test), detector.anomaly_score(data.test)
    )


def test_a_kept_model_records_its_banks_provenance_and_checks_it(fitted, tmp_path) -> None:
    detector, data = fitted
    provenance = {"embeddings": "train.h5", "normal_class": 3, "rows": 300, "bank_sha256": "ab"}
    detector.save(tmp_path / "model.pt", include_bank=False, provenance=provenance)
    loaded = CAPDetector.load(tmp_path / "model.pt", bank=data.bank, provenance=dict(provenance))
    np.testing.assert_array_equal(
        loaded.anomaly_score(data.test), detector.anomaly_score(data.test)
    )  # reloads and scores exactly as before
    with pytest.raises(DataError, match="trained on another bank: .* differs in normal_class"):
        CAPDetector.load(
            tmp_path / "model.pt", bank=data.bank, provenance={**provenance, "normal_class": 4}
        )


def test_cap_load_rejects_missing_and_foreign_files(tmp_path) -> None:
    with pytest.raises(MissingResourceError, match="saved CAPDetector .*absent.pt does not exist"):
        CAPDetector.load(tmp_path / "absent.pt")
    (tmp_path / "foreign.pt").write_text("not a model")
    with pytest.raises(DataError, match="cannot load saved CAPDetector .*foreign.pt"):
        CAPDetector.load(tmp_path / "foreign.pt")


def test_cap_save_before_fit_writes_nothing(tmp_path) -> None:
    with pytest.raises(NotFittedError):
        CAPDetector().save(tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("method", sorted(DETECTORS))
def test_scoring_before_fit_raises(method: str) -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        DETECTORS[method]().anomaly_score(np.ones((2, 3)))


@pytest.mark.parametrize("method", ["neighbor_weights", "project"])
def test_cap_readouts_before_fit_raise(method: str) -> None:
    with pytest.raises(NotFittedError, match="CAPDetector is not fitted yet"):
        getattr(CAPDetector(), method)(np.ones((2, 3)))


@pytest.mark.parametrize("method", fitting(sorted(DETECTORS)))
def test_bad_features_raise_data_errors(method: str, blobs) -> None:
    detector = small_detector(method)
    with pytest.raises(DataError, match="bank is empty"):
        detector.fit(np.empty((0, 16), np.float32))
    nan_bank = blobs.bank.copy()
    nan_bank[[3, 7]] = np.nan
    with pytest.raises(DataError, match=r"bank has 2 row\(s\) with NaN or inf .*first: row 3"):
        detector.fit(nan_bank)
    with pytest.raises(DataError, match="must be 2-D"):
        detector.fit(blobs.bank[0])
    detector.fit(blobs.bank)
    with pytest.raises(DataError, match="X has 15 features per row but the bank has 16"):
        detector.anomaly_score(blobs.test[:, :15])
    with pytest.raises(DataError, match=r"X has 1 row\(s\) with NaN or inf"):
        detector.anomaly_score(np.where(np.arange(16) == 0, np.inf, blobs.test[:1]))


def test_k_must_leave_an_other_item_for_training(blobs) -> None:
    with pytest.raises(DataError, match="k=8 needs a bank of at least 9 items for training"):
        _fast().fit(blobs.bank[:8])
    _fast().fit(blobs.bank[:9])  # k + 1 items are enough
    with pytest.raises(DataError, match="k=8 needs a bank of at least 8 items for scoring"):
        NoAdaptationDetector(k=8).fit(blobs.bank[:7])
    NoAdaptationDetector(k=8).fit(blobs.bank[:8])


def test_loading_with_a_bank_smaller_than_k_raises(fitted, tmp_path) -> None:
    detector, data = fitted
    detector.save(tmp_path / "model.pt", include_bank=False)
    with pytest.raises(DataError, match="k=8 needs a bank of at least 8 items for scoring"):
        CAPDetector.load(tmp_path / "model.pt", bank=data.bank[:7])


@pytest.mark.parametrize(
    ("neighbors", "message"),
    [
        (np.zeros((100, 4), int), "4 columns but k=8"),
        (np.zeros((99, 8), int), r"shape \(100, >=8\)"),
        (np.zeros((100, 8)), "integer indices"),
        (np.full((100, 8), 300), r"valid: \[0, 299\]"),
        (np.full((100, 8), -1), r"valid: \[0, 299\]"),
    ],
)
def test_bad_precomputed_test_neighbors(fitted, neighbors, message: str) -> None:
    detector, data = fitted
    with pytest.raises(DataError, match=message):
        detector.anomaly_score(data.test, neighbors=neighbors)


def test_training_neighbors_must_exclude_self(blobs) -> None:
    _, with_self = knn_search(blobs.bank, blobs.bank, k=8)
    with pytest.raises(DataError, match="must exclude each item itself; row 0"):
        _fast().fit(blobs.bank, neighbors=with_self)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"head": "mlp"}, r"CAPDetector.head must be a str among \{.*'linear_relu'.*\}; got 'mlp'"),
        ({"constraint": "l1"}, r"constraint must be a str among \{.*'sq_l2'.*\}; got 'l1'"),
        ({"init": "zeros"}, r"init must be a str among \{.*'identity'.*\}; got 'zeros'"),
        ({"lam": -1.0}, r"lam must be a float in the range \[0.0, inf\); got -1.0"),
        ({"lr_decay": 1.5}, r"lr_decay must be a float in the range \(0.0, 1.0\] or None; got 1.5"),
        ({"epochs": 0}, r"epochs must be an int in the range \[1, inf\); got 0"),
        ({"attention": "yes"}, "attention must be an instance of 'bool'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
    ],
)
def test_bad_cap_settings_raise_config_errors(blobs, settings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _fast(**settings).fit(blobs.bank)


def test_bad_monitor_raises(blobs) -> None:
    with pytest.raises(DataError, match="both normal"):
        _fast().fit(blobs.bank, monitor=(blobs.test, np.zeros(len(blobs.test))))
    with pytest.raises(DataError, match="100 labels"):
        _fast().fit(blobs.bank, monitor=(blobs.test, blobs.is_anomaly[:10]))
    with pytest.raises(ConfigError, match="monitor must be"):
        _fast().fit(blobs.bank, monitor=blobs.test)
