"""The baselines beside CAP: Mahalanobis, cosine kNN (DN2 normalised) and PyOD's detectors,
each against a direct computation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from assets import needs_pyod
from sklearn.base import clone
from sklearn.covariance import LedoitWolf

import cap.detectors.gaussian as gaussian
from cap.detectors import DN2Detector, MahalanobisDetector, PyODDetector
from cap.detectors.pyod_adapter import PYOD_MODELS, pyod_class
from cap.detectors.search import chunk_slices
from cap.utils.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("single_thread_math")


# --------------------------------------------------------------------------- Mahalanobis


def test_mahalanobis_is_the_squared_distance_under_ledoit_wolf(blobs) -> None:
    detector = MahalanobisDetector().fit(blobs.bank)
    gaussian_fit = LedoitWolf().fit(blobs.bank.astype(np.float64))
    precision = np.linalg.inv(gaussian_fit.covariance_)
    centred = blobs.test.astype(np.float64) - gaussian_fit.location_
    expected = np.einsum("ij,jk,ik->i", centred, precision, centred)
    scores = detector.anomaly_score(blobs.test)
    assert scores.shape == (len(blobs.test),) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, rtol=1e-7)
    assert 0 < detector.shrinkage_ < 1 and detector.precision_.dtype == np.float64


def test_mahalanobis_scores_in_chunks_as_in_one_block(blobs, monkeypatch) -> None:
    detector = MahalanobisDetector().fit(blobs.bank)
    whole = detector.anomaly_score(blobs.test)
    seven_rows = lambda n, per_row: chunk_slices(n, per_row, budget=7 * per_row)  # noqa: E731
    monkeypatch.setattr(gaussian, "chunk_slices", seven_rows)
    np.testing.assert_allclose(detector.anomaly_score(blobs.test), whole, rtol=1e-12)


def test_mahalanobis_ignores_neighbors_and_fits_more_dimensions_than_items(blobs) -> None:
    detector = MahalanobisDetector().fit(blobs.bank, neighbors=np.zeros((300, 4), int))
    np.testing.assert_array_equal(
        detector.anomaly_score(blobs.test, neighbors=np.zeros((100, 4), int)),
        detector.anomaly_score(blobs.test),
    )
    small = MahalanobisDetector().fit(blobs.bank[:10])  # N < D: shrinkage keeps Σ invertible
    assert np.isfinite(small.anomaly_score(blobs.test)).all()


def test_mahalanobis_refuses_a_bank_of_identical_rows(blobs) -> None:
    with pytest.raises(DataError, match="all 300 rows of bank are identical"):
        MahalanobisDetector().fit(np.tile(blobs.bank[:1], (300, 1)))


# --------------------------------------------------------------------- cosine kNN (DN2)


def _brute_cosine_knn(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    squared = ((queries[:, None].astype(np.float64) - bank[None]) ** 2).sum(-1)  # (n, N)
    return np.sort(squared, axis=1)[:, :k].sum(1)


def test_normalized_dn2_sums_squared_distances_of_unit_vectors(blobs) -> None:
    detector = DN2Detector(k=3, normalize=True).fit(blobs.bank)
    scores = detector.anomaly_score(blobs.test)
    expected = _brute_cosine_knn(blobs.bank, blobs.test, 3)
    np.testing.assert_allclose(scores, expected, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(detector.search_bank_, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(detector.bank_, blobs.bank)  # the bank is kept as given
    rescaled = DN2Detector(k=3, normalize=True).fit(0.5 * blobs.bank)
    np.testing.assert_allclose(rescaled.anomaly_score(3.0 * blobs.test), scores, rtol=1e-5)
    raw = DN2Detector(k=3).fit(blobs.bank)
    assert raw.search_bank_ is raw.bank_
    assert not np.allclose(raw.anomaly_score(blobs.test), scores)


def test_normalized_dn2_scores_a_zero_query_as_an_orthogonal_item(blobs) -> None:
    detector = DN2Detector(k=3, normalize=True).fit(blobs.bank)
    queries = np.zeros((2, blobs.bank.shape[1]), dtype=np.float32)
    np.testing.assert_allclose(detector.anomaly_score(queries), 6.0, rtol=1e-6)  # Σ (2 − 2·0)


def test_normalize_must_be_a_bool(blobs) -> None:
    with pytest.raises(ConfigError, match="DN2Detector.normalize must be an instance of 'bool'"):
        DN2Detector(normalize="yes").fit(blobs.bank)


# ------------------------------------------------------------------------------ PyOD


@needs_pyod
@pytest.mark.parametrize(("model", "options"), [("ECOD", None), ("IForest", {"n_estimators": 20})])
def test_pyod_scores_are_pyods_decision_function(blobs, model: str, options) -> None:
    detector = PyODDetector(model=model, options=options, seed=7).fit(blobs.bank)
    direct_class = pyod_class(model)
    direct_options = dict(options or {})
    if model == "IForest":
        direct_options["random_state"] = 7
    direct = direct_class(**direct_options).fit(blobs.bank).decision_function(blobs.test)
    np.testing.assert_array_equal(detector.anomaly_score(blobs.test), direct)
    assert isinstance(detector.model_, direct_class) and detector.n_features_in_ == 16
    assert detector.options == options  # the seed is not written into the settings


@needs_pyod
def test_pyod_seed_makes_iforest_reproducible(blobs) -> None:
    def scores(seed: int) -> np.ndarray:
        detector = PyODDetector(model="iforest", options={"n_estimators": 20}, seed=seed)
        return detector.fit(blobs.bank).anomaly_score(blobs.test)

    np.testing.assert_array_equal(scores(1), scores(1))
    assert not np.array_equal(scores(1), scores(2))


@needs_pyod
def test_pyod_ignores_neighbors_and_clones(blobs) -> None:
    detector = PyODDetector(model="KNN", options={"n_neighbors": 3, "method": "mean"})
    copy = clone(detector)
    assert copy.get_params() == detector.get_params() and copy.options is not detector.options
    detector.fit(blobs.bank, neighbors=np.zeros((300, 2), int))
    np.testing.assert_array_equal(
        detector.anomaly_score(blobs.test, neighbors=np.zeros((100, 2), int)),
        detector.anomaly_score(blobs.test),
    )


@needs_pyod
def test_every_listed_pyod_model_resolves() -> None:
    for name in ["ECOD", "IForest", "KNN", "LOF", "COPOD", "PCA", "HBOS", "OCSVM"]:
        assert pyod_class(name).__name__ == name and name in PYOD_MODELS
    assert pyod_class("loda") is pyod_class("LODA")


@needs_pyod
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model": "Panda"}, r"unknown PyOD model 'Panda'; valid: ABOD, .*ECOD"),
        ({"model": "IForest", "options": {"n_trees": 5}}, "IForest has no option.*n_trees.*"),
        ({"model": "IForest", "options": {"random_state": 1}}, "with the seed setting"),
    ],
)
def test_bad_pyod_models_and_options_raise_config_errors(blobs, settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        PyODDetector(**settings).fit(blobs.bank)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model": None}, "PyODDetector.model must be an instance of 'str'; got None"),
        ({"options": ["n_neighbors", 3]}, "options must be an instance of 'dict' or None"),
        ({"seed": -1}, r"seed must be an int in the range \[0, inf\); got -1"),
        ({"seed": 1.5}, r"seed must be an int in the range \[0, inf\); got 1.5"),
        ({"model": "sod"}, "PyOD sod scores the queries against each other.*not a one-class"),
    ],
)
def test_bad_pyod_settings_raise_before_pyod_is_needed(blobs, settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        PyODDetector(**settings).fit(blobs.bank)


def test_a_missing_pyod_says_how_to_install_it(blobs, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyod", None)
    monkeypatch.setitem(sys.modules, "pyod.models.base", None)
    with pytest.raises(ConfigError, match=r"optional package pyod .*pip install pyod"):
        PyODDetector(model="ECOD").fit(blobs.bank)


def test_the_registry_imports_without_pyod() -> None:
    code = (
        "import sys; sys.modules['pyod'] = None\n"
        "from cap.detectors import DETECTORS; assert 'pyod' in DETECTORS"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_pyod
def test_pyod_ecod_scores_a_batch_transductively(blobs) -> None:
    detector = PyODDetector(model="ECOD").fit(blobs.bank)
    alone = detector.anomaly_score(blobs.test[:10])
    in_batch = detector.anomaly_score(blobs.test)[:10]
    assert not np.allclose(alone, in_batch)  # documented in PyODDetector
