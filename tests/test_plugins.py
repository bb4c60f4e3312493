"""Detectors of other installed distributions (entry-point group ``capbench.detectors``):
the example plugin (``examples/plugin-detector``, a scikit-learn-style estimator) installed
into a temporary folder, and hand-written ones (a scikit-learn estimator named directly, a
``BaseDetector`` subclass); each is listed without being imported, checked at planning,
digested by the run cache, and run through the workflow into the tables like capbench's
own."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from assets import REPO, needs_offline_assets
from sklearn.metrics import roc_auc_score
from workflow_helpers import smoke_config, snakemake, validated, write_config

from cap.detectors import detector_class, detector_names, make_detector
from cap.detectors.base import REGISTERED
from cap.detectors.registry import builtin_names
from cap.evaluation import cache
from cap.utils.errors import ConfigError
from cap.workflow import Plan

EXAMPLE = REPO / "examples" / "plugin-detector"
#: The example's method and module (its pyproject.toml's entry point).
METHOD, MODULE = "kth_neighbor", "capbench_kth_neighbor"

#: A distribution written by hand: a scikit-learn estimator named directly, and a
#: capbench detector of its own.
HAND_MADE = {
    "entry_points.txt": (
        "[capbench.detectors]\n"
        "sklearn_lof = sklearn.neighbors:LocalOutlierFactor\n"
        "farthest_mean = capbench_hand_made:FarthestMean\n"
    ),
    "METADATA": "Metadata-Version: 2.1\nName: capbench-hand-made\nVersion: 0.1\n",
}
HAND_MADE_MODULE = '''
from cap.detectors.base import BaseDetector
from cap.detectors.settings import Param

class FarthestMean(BaseDetector):
    """The distance to the bank's mean."""

    declared_settings = {"scale": Param("multiplies the score", float)}

    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = scale

    def fit(self, X, y=None, *, neighbors=None):
        self._validate_params()
        self.bank_ = X
        self.n_features_in_ = X.shape[1]
        return self

    def _anomaly_score(self, X, neighbors):
        return self.scale * ((X - self.bank_.mean(axis=0)) ** 2).sum(axis=1)
'''


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the example plugin is pip-installed (offline, from a copy)."""
    source = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("example") / "plugin-detector")
    site = tmp_path_factory.mktemp("site")
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
        "--no-build-isolation", "--target", str(site), str(source),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return site


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Put folders of distributions on ``sys.path``; the plugins' methods registered
    meanwhile are unregistered afterwards (capbench's own stay: their modules stay
    imported), and the modules of those folders forgotten."""
    folders: list[Path] = []
    registered = set(REGISTERED)

    def put(folder: Path) -> None:
        folders.append(folder)
        monkeypatch.syspath_prepend(str(folder))

    yield put
    for name in set(REGISTERED) - registered - set(builtin_names()):
        del REGISTERED[name]
    for name, module in list(sys.modules.items()):
        if any(str(getattr(module, "__file__", "")).startswith(str(f)) for f in folders):
            del sys.modules[name]


@pytest.fixture
def hand_made(tmp_path: Path) -> Path:
    """A folder holding the :data:`HAND_MADE` distribution, its files written by hand."""
    info = tmp_path / "capbench_hand_made-0.1.dist-info"
    info.mkdir()
    for name, text in HAND_MADE.items():
        (info / name).write_text(text)
    (tmp_path / "capbench_hand_made.py").write_text(HAND_MADE_MODULE)
    return tmp_path


def plugin_config(variant: dict) -> dict:
    """The smoke config cut to one CIFAR-10 class, a DN2 variant and ``variant`` (``kth``),
    one table of both, ranked on the leaderboard."""
    config = smoke_config()
    config["datasets"] = {"cifar10": config["datasets"]["cifar10"]}
    config["datasets"]["cifar10"].update(classes=[0], limit_per_class={"train": 20, "test": 6})
    del config["datasets"]["cifar10"]["feature_maps_per_class"]
    config["resources"].pop("fashion-mnist", None)
    config["methods"] = {}
    config["variants"] = {"dn2": {"method": "dn2"}, "kth": variant}
    entries = [{"label": "DN2", "variant": "dn2"}, {"label": "k-th neighbour", "variant": "kth"}]
    config["tables"] = {
        "plugin": {
            "title": "A plugin beside DN2",
            "layout": "variants_as_rows",
            "datasets": ["cifar10"],
            "entries": entries,
        }
    }
    config["figures"] = {}
    config["report"].update(leaderboard="plugin", claims=[], claims_figure=False)
    return config


# ------------------------------------------------------------------- the example plugin


def test_the_example_is_listed_and_imported_only_when_asked_for(example_site, on_path, blobs):
    on_path(example_site)
    assert METHOD in detector_names() and MODULE not in sys.modules
    cls = detector_class(METHOD)
    assert MODULE in sys.modules and cls.name == METHOD
    assert cls.default_params() == {"n_neighbors": 5, "metric": "cosine"}
    detector = make_detector(METHOD, n_neighbors=3).fit(blobs.bank)
    scores = detector.anomaly_score(blobs.test)
    np.testing.assert_array_equal(scores, -detector.model_.score_samples(blobs.test))
    assert roc_auc_score(blobs.is_anomaly, scores) >= 0.95  # higher = more anomalous


def test_a_bad_setting_of_a_plugin_is_refused_at_planning_naming_it(example_site, on_path):
    on_path(example_site)
    config = plugin_config({"method": METHOD, "n_neighbors": -1})
    with pytest.raises(
        ConfigError, match=r"^variants\.kth\.n_neighbors: -1 is less than the minimum of 1"
    ):
        validated(copy.deepcopy(config))
    config["variants"]["kth"]["n_neighbors"] = 3
    config = validated(config)
    config["variants"]["kth"]["n_neighbors"] = -1  # past the schema: planning checks it too
    message = r"variants.kth.n_neighbors must be an int in the range \[1, inf\); got -1"
    with pytest.raises(ConfigError, match=message):
        Plan(config)
    config["variants"]["kth"].update(n_neighbors=3, metric="manhattan")
    with pytest.raises(ConfigError, match=r"variants.kth.metric must be a str among"):
        Plan(config)


def test_the_examples_config_plans_its_runs_beside_capbenchs(example_site, on_path):
    on_path(example_site)
    plan = Plan(validated(yaml.safe_load((EXAMPLE / "config.yaml").read_text())))
    methods = {plan.setting_of(run).method for run in plan.targets.table_runs("plugin")}
    assert METHOD in methods and len(methods) > 1


def test_the_run_cache_digests_a_plugins_source(example_site, on_path, monkeypatch, tmp_path):
    on_path(example_site)
    cls = detector_class(METHOD)
    before = cache.code_digest(cls)
    edited = tmp_path / f"{MODULE}.py"  # the plugin's module, one byte added
    edited.write_bytes(Path(cache._origin(MODULE)).read_bytes() + b"\n")
    origin = cache._origin
    monkeypatch.setattr(cache, "_origin", lambda n: str(edited) if n == MODULE else origin(n))
    cache.code_digest.cache_clear()
    assert cache.code_digest(cls) != before


def test_a_config_names_a_method_and_never_imports_a_module_by_name(example_site, on_path):
    on_path(example_site)
    for name in (f"{MODULE}:KthNeighborDistance", MODULE, "os"):
        with pytest.raises(ConfigError, match=f"unknown method '{name}'; valid: .*{METHOD}"):
            detector_class(name)
    assert MODULE not in sys.modules


# --------------------------------------------------------------- hand-written plugins


def test_a_scikit_learn_estimator_named_directly_is_adapted(hand_made, on_path, blobs):
    on_path(hand_made)
    cls = detector_class("sklearn_lof")
    assert cls.estimator.__name__ == "LocalOutlierFactor"
    assert cls().get_params()["novelty"] is False and "random_state" not in cls().get_params()
    with pytest.raises(ConfigError, match="LocalOutlierFactor has no score_samples"):
        cls().fit(blobs.bank)  # LocalOutlierFactor(novelty=False) scores its bank only
    scores = cls(novelty=True).fit(blobs.bank).anomaly_score(blobs.test)
    assert roc_auc_score(blobs.is_anomaly, scores) >= 0.95
    with pytest.raises(ConfigError, match=r"LocalOutlierFactor.n_neighbors must be an int"):
        cls(n_neighbors=0).fit(blobs.bank)


def test_a_base_detector_plugin_registers_under_its_entry_points_name(hand_made, on_path, blobs):
    on_path(hand_made)
    cls = detector_class("farthest_mean")
    assert cls.name == "farthest_mean" and cls.__module__ == "capbench_hand_made"
    scores = make_detector("farthest_mean", scale=2.0).fit(blobs.bank).anomaly_score(blobs.test)
    expected = 2.0 * ((blobs.test - blobs.bank.mean(axis=0)) ** 2).sum(axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    with pytest.raises(ConfigError, match="FarthestMean.scale must be an instance of 'float'"):
        make_detector("farthest_mean", scale="2").fit(blobs.bank)


def test_a_plugin_taking_capbenchs_name_is_refused(hand_made, on_path):
    info = next(hand_made.glob("*.dist-info"))
    (info / "entry_points.txt").write_text("[capbench.detectors]\ndn2 = os:getcwd\n")
    on_path(hand_made)
    with pytest.raises(ConfigError, match="takes the method name 'dn2'"):
        detector_names()


# ----------------------------------------------------------------------- the workflow


@pytest.mark.workflow
@needs_offline_assets
def test_the_example_plugin_runs_through_the_workflow_into_the_tables(example_site, tmp_path):
    """No file of capbench knows the plugin: it is installed, named in the config, and its
    runs come out in runs.csv, its table and the leaderboard beside DN2's."""
    config = write_config(
        tmp_path / "plugin.yaml", plugin_config({"method": METHOD, "n_neighbors": 3})
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(example_site), str(REPO)])}
    result = snakemake(tmp_path, "--cores", "2", "all", "--configfile", str(config), env=env)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    tables = tmp_path / "results" / "tables"
    runs = pd.read_csv(tables / "runs.csv")
    ours = runs[runs["method"] == METHOD]
    assert list(ours["variant"]) == ["kth"] and list(ours["n_neighbors"]) == [3]
    assert ours["auroc"].between(0, 1).all()
    table = pd.read_csv(tables / "plugin.csv")
    assert set(table["entry"]) == {"DN2", "k-th neighbour"} and table["value_pct"].notna().all()
    assert "k-th neighbour" in (tables / "leaderboard.md").read_text()
