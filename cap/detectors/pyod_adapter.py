"""Any PyOD detector (Zhao, Nasrullah and Li, 2019) on the pretrained features.

An optional extra (``pip install pyod``): PyOD is imported when such a detector is
fitted, so ``cap`` imports without it. The detector class is looked up by name in
``pyod.models``; its ``decision_function`` is the anomaly score (PyOD's scores are
higher = more anomalous, as ours).

Shapes: N = bank items, n = queries, D = feature dimension.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from cap.detectors.base import NO_SPREAD, BaseDetector
from cap.detectors.settings import SEED_PARAM, Param
from cap.utils.errors import ConfigError
from cap.utils.validation import check_features, check_not_constant

#: Unsupervised PyOD detectors on feature vectors, by class name → module of ``pyod.models``.
#: Other classes of ``pyod.models`` are found by a search of its modules.
PYOD_MODELS: dict[str, str] = {
    "ABOD": "abod",
    "AutoEncoder": "auto_encoder",
    "CBLOF": "cblof",
    "COPOD": "copod",
    "DeepSVDD": "deep_svdd",
    "DIF": "dif",
    "ECOD": "ecod",
    "GMM": "gmm",
    "HBOS": "hbos",
    "IForest": "iforest",
    "INNE": "inne",
    "KDE": "kde",
    "KNN": "knn",
    "KPCA": "kpca",
    "LODA": "loda",
    "LOF": "lof",
    "LUNAR": "lunar",
    "MCD": "mcd",
    "OCSVM": "ocsvm",
    "PCA": "pca",
    "QMCD": "qmcd",
    "ROD": "rod",
    "Sampling": "sampling",
    "VAE": "vae",
}

#: PyOD models whose ``decision_function`` scores the queries against each other only and
#: never uses the fitted data (outlier detection in the test set): refused here.
QUERY_ONLY_MODELS = ("COF", "LMDD", "LOCI", "SOD", "SOS")


class PyODDetector(BaseDetector, name="pyod"):
    """A PyOD detector, by class name, fitted on the bank; score = its ``decision_function``.

    Neighbours are not shared with the benchmark's search: a precomputed
    ``neighbors`` array is accepted and ignored (PyOD's kNN-based models search
    for themselves). PyOD's ``contamination`` only sets its label threshold, not
    the scores, so it does not matter here.

    Some PyOD models score a batch transductively: ECOD and COPOD recompute their
    empirical CDFs on the bank plus all the queries of the call (ROD and DIF also
    depend on the batch), so a query's score depends on the other queries (the
    benchmark scores each test set in one call); VAE samples at scoring time. Models
    that ignore the bank and score the queries among themselves
    (:data:`QUERY_ONLY_MODELS`: COF, SOD...) are refused: they are not one-class
    detectors.

    Parameters
    ----------
    model : str
        PyOD class name, e.g. ``"ECOD"``, ``"IForest"``, ``"KNN"``, ``"LOF"``,
        ``"COPOD"``, ``"PCA"``, ``"HBOS"``, ``"OCSVM"`` (case-insensitive).
    options : dict or None
        Keyword arguments of the PyOD class (not ``random_state``: see ``seed``;
        ``n_features``, which DeepSVDD requires, is D unless given).
    seed : int
        The PyOD class's ``random_state``, where it takes one.

    Attributes
    ----------
    bank_ : float32 array of shape (N, D)
        The validated bank.
    model_ : pyod.models.base.BaseDetector
        The fitted PyOD detector.
    n_features_in_ : int
        D.
    """

    declared_settings: ClassVar[Mapping[str, Param]] = {
        "model": Param("PyOD detector class name (ECOD, IForest, KNN, LOF, ...)", str),
        "options": Param(
            "keyword arguments of the PyOD class (random_state comes from the run's seed)",
            dict,
            None,
        ),
        "seed": SEED_PARAM,
    }
    failed_checks: ClassVar[Mapping[str, str]] = {"check_fit2d_1sample": NO_SPREAD}

    def __init__(
        self, *, model: str = "ECOD", options: dict[str, Any] | None = None, seed: int = 0
    ) -> None:
        self.model = model
        self.options = options
        self.seed = seed

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"model": "IForest", "options": {"n_estimators": 10}}

    def fit(
        self, X: np.ndarray, y: object = None, *, neighbors: np.ndarray | None = None
    ) -> PyODDetector:
        """Fit the PyOD detector on the bank ``X`` (N, D); ``y`` and ``neighbors`` are
        ignored."""
        self._validate_params()
        options = {} if self.options is None else self.options
        if not all(isinstance(key, str) for key in options):
            raise ConfigError(f"options must be a mapping of keyword arguments; got {options!r}")
        if "random_state" in options:
            raise ConfigError("set PyOD's random_state with the seed setting, not in options")
        if self.model.lower() in (name.lower() for name in QUERY_ONLY_MODELS):
            raise ConfigError(
                f"PyOD {self.model} scores the queries against each other, never against the "
                "normal bank: it is not a one-class detector (use e.g. KNN, LOF or ECOD)"
            )
        cls = pyod_class(self.model)
        parameters = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        valid = [name for name in parameters if name not in ("self", "random_state")]
        unknown = sorted(set(options) - set(valid))
        if unknown and not takes_any:
            raise ConfigError(
                f"PyOD {cls.__name__} has no option(s) {', '.join(unknown)}; "
                f"valid: {', '.join(valid)}"
            )
        kwargs = dict(options)
        if "random_state" in parameters:
            kwargs["random_state"] = self.seed
        bank = check_features(X, "bank")
        check_not_constant(bank, "bank")
        if "n_features" in parameters:
            kwargs.setdefault("n_features", bank.shape[1])
        self.model_ = cls(**kwargs).fit(bank)
        self.bank_ = bank
        self.n_features_in_ = bank.shape[1]
        return self

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        return np.asarray(self.model_.decision_function(X), dtype=np.float64).reshape(len(X))


def pyod_class(name: str) -> type:
    """The PyOD detector class called ``name`` (case-insensitive), imported from
    ``pyod.models``; :class:`ConfigError` when PyOD is missing or has no such class."""
    try:
        from pyod.models.base import BaseDetector as PyODBase
    except ImportError as error:
        raise ConfigError(
            f"method 'pyod' needs the optional package pyod ({error}): "
            "pip install pyod (or pip install 'capbench[pyod]')"
        ) from error
    known = {key.lower(): (key, module) for key, module in PYOD_MODELS.items()}
    if name.lower() in known:
        class_name, module = known[name.lower()]
        candidates = [module]
    else:  # search every module of pyod.models (imports them all: only for rare names)
        import pyod.models

        class_name = name
        candidates = [info.name for info in pkgutil.iter_modules(pyod.models.__path__)]
    unimportable = []  # modules whose own dependencies are missing
    for module in candidates:
        try:
            namespace = importlib.import_module(f"pyod.models.{module}")
        except ImportError as error:
            if len(candidates) == 1:
                raise ConfigError(
                    f"PyOD {class_name} needs a package that is missing: {error}"
                ) from error
            unimportable.append(f"{module} ({error})")
            continue
        for attribute, value in vars(namespace).items():
            if (
                attribute.lower() == class_name.lower()
                and isinstance(value, type)
                and issubclass(value, PyODBase)
            ):
                return value
    missing = f"; modules not imported: {', '.join(unimportable)}" if unimportable else ""
    raise ConfigError(
        f"unknown PyOD model {name!r}; valid: {', '.join(PYOD_MODELS)} "
        f"(or another detector class of pyod.models){missing}"
    )
