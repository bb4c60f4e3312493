"""The detector interfaces (scikit-learn estimators) and the registry of detectors.

A detector is fitted on a memory bank of normal features and scores queries with
``anomaly_score(X)``: **higher = more anomalous**; ``score_samples(X)`` is its negation,
for scikit-learn's tools (lower = more abnormal, as scikit-learn's outlier detectors).
``__init__`` only stores keyword-only settings; ``fit`` validates them and the data,
sets attributes ending in ``_`` and returns ``self``; every scoring method first
checks that the detector is fitted.

Three contracts, each a class here:

- :class:`BaseDetector`: every method (``fit``, ``anomaly_score``, ``get_params``...).
- :class:`KNNDetector`: compares a query with its ``k`` nearest normal features; owns
  ``k`` and accepts precomputed neighbour indices.
- :class:`TrainableDetector`: learns parameters, so a fitted detector has a training
  ``history_`` and is saved and loaded (``save``/``load``); ``fit`` may monitor a
  test set after every epoch. The workflow keeps a model file only for these.

Each class declares its settings once, in ``declared_settings`` (:mod:`cap.detectors.settings`):
``fit`` checks them with :meth:`BaseDetector._validate_params`, and the config schema, the
docs' settings tables and the tests read the same declaration. Nothing here imports torch:
the workflow plans with the registry (:mod:`cap.detectors.registry`) alone.
"""

from __future__ import annotations

import inspect
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from cap.detectors.search import knn_search
from cap.detectors.settings import Param, check_values
from cap.utils.errors import ConfigError, NotFittedError
from cap.utils.validation import (
    check_bank_size,
    check_features,
    check_neighbors,
    check_nonzero_rows,
    check_same_dim,
)

#: A method name: it starts the content keys of its settings, which name files.
METHOD_PATTERN = "[a-z0-9_]+"

#: Every class registered so far, by method name (:mod:`cap.detectors.registry` lists them
#: all, those not imported yet too).
REGISTERED: dict[str, type[BaseDetector]] = {}

#: Why a detector that models the bank's spread fails scikit-learn's one-item check.
NO_SPREAD = (
    "one item has no spread to model: refused as a bank of identical rows (DataError), "
    "without the check's words ('1 sample')"
)

#: A test set scored after every epoch of training: ``(X_test, y_test)`` or
#: ``(X_test, y_test, test_neighbors)``, y = 1 for anomalies.
Monitor = tuple[np.ndarray, ...]


class BaseDetector(BaseEstimator, ABC):
    """Anomaly detector on pretrained features; higher scores = more anomalous.

    Subclasses register under a method name with ``class X(BaseDetector, name="x")``,
    implement :meth:`fit` (which first calls :meth:`_validate_params`) and
    :meth:`_anomaly_score`, take their settings as keyword-only ``__init__`` arguments
    stored unchanged under the same names, and declare each in ``declared_settings``.

    A scikit-learn estimator with the default tags of ``BaseEstimator``: unsupervised
    (``fit`` ignores ``y``), dense 2-D input without NaN or inf, no estimator type. It is
    deliberately not a scikit-learn *outlier detector*: those label items ±1 through a
    ``contamination`` threshold (``predict``, ``fit_predict``), which the benchmark never
    uses (it ranks items by score) and which would add a setting to every detector.
    A ``Pipeline`` scores through :meth:`score_samples`, the negated anomaly score.
    """

    #: Method name in the registry (:mod:`cap.detectors.registry`).
    name: ClassVar[str]
    #: Each setting's constraints and one-line description (:mod:`cap.detectors.settings`).
    declared_settings: ClassVar[Mapping[str, Param]] = {}
    #: Whether fitting learns parameters (see :class:`TrainableDetector`).
    trainable: ClassVar[bool] = False
    #: Whether it reads the patch layers' maps (N, h, w, C) instead of pooled features.
    reads_patches: ClassVar[bool] = False
    #: Whether it also scores positions: ``anomaly_maps`` (n, h, w), for pixel metrics.
    localizes: ClassVar[bool] = False
    #: Whether an image's score is the largest of its map's (then read off the maps, once).
    scores_are_map_maxima: ClassVar[bool] = False
    #: scikit-learn checks it fails beyond its bases' (:meth:`expected_failed_checks`), with why.
    failed_checks: ClassVar[Mapping[str, str]] = {
        "check_dtype_object": (
            "an object array holding a dict raises DataError, a ValueError like every bad "
            "array (the CLI reports it without a traceback), with numpy's message but not "
            "numpy's TypeError"
        ),
    }

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            register(name, cls)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """The settings (keyword-only ``__init__`` parameters) with their defaults."""
        return {
            parameter.name: parameter.default
            for parameter in inspect.signature(cls.__init__).parameters.values()
            if parameter.kind is parameter.KEYWORD_ONLY
        }

    @classmethod
    def _param_names(cls) -> list[str]:
        return list(cls.default_params())

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        """Settings for quick fits on tiny data, the tests' (a few dozen items, scikit-learn's
        checks among them): each method's own, so that the tests run over the registry."""
        return {}

    @classmethod
    def expected_failed_checks(cls) -> dict[str, str]:
        """The scikit-learn estimator checks this method fails, each with why (scikit-learn's
        ``expected_failed_checks``): the ``failed_checks`` of the class and its bases."""
        return {
            check: reason
            for klass in reversed(cls.__mro__)
            for check, reason in vars(klass).get("failed_checks", {}).items()
        }

    def _validate_params(self) -> None:
        """Check every setting against its declaration, as scikit-learn's ``fit`` does, with
        a :class:`ConfigError` naming it."""
        check_values(self.declared_settings, self.get_params(), type(self).__name__)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` settings, by name, in ``__init__`` order (scikit-learn's sorts
        them; run records list them in this order); ``deep`` changes nothing, as no setting
        is itself an estimator."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> BaseDetector:
        """Change settings (validated at the next ``fit``); returns ``self``. An unknown name
        raises :class:`ConfigError` listing the valid ones (scikit-learn's: a bare ValueError)."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(
                    f"{type(self).__name__} has no setting {key!r}; valid: {', '.join(valid)}"
                )
            setattr(self, key, value)
        return self

    @property
    def chaotic(self) -> bool:
        """Whether this detector's scores follow floating-point noise (so that two machines
        give different AUROCs, as two seeds would): verification then compares the mean
        over seeds, not each run (:mod:`cap.reporting.verification`)."""
        return False

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"{type(self).__name__}({settings})"

    @abstractmethod
    def fit(
        self, X: np.ndarray, y: object = None, *, neighbors: np.ndarray | None = None
    ) -> BaseDetector:
        """Fit on a memory bank ``X`` (N, D) of normal features; returns ``self``.

        ``y`` is ignored (scikit-learn's signature, so that a ``Pipeline`` can fit).
        ``neighbors`` (N, >=k), optional: precomputed training neighbours of each
        bank item (self excluded, by decreasing cosine similarity).
        """

    def anomaly_score(self, X: np.ndarray, *, neighbors: np.ndarray | None = None) -> np.ndarray:
        """Anomaly scores of shape (n,) for queries ``X`` (n, D); higher = more anomalous.

        ``neighbors`` (n, >=k), optional: precomputed indices of each query's
        nearest bank items by decreasing cosine similarity; searched when omitted.
        A query of norm zero has cosine 0 with everything, so cosine-based
        detectors give it the score of an orthogonal item.
        """
        check_is_fitted(self)
        X = self._check_queries(X)
        return self._anomaly_score(X, neighbors)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Negated anomaly scores of shape (n,), ``-anomaly_score(X)``: **lower = more
        anomalous**, scikit-learn's sign, for a ``Pipeline`` (neighbours are searched)."""
        return -self.anomaly_score(X)

    @abstractmethod
    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        """Scores (n,) of validated queries ``X`` (n, D)."""

    def _check_queries(self, X: object) -> np.ndarray:
        """Validated float32 queries (n, D) with the bank's dimension."""
        X = check_features(X, "X")
        check_same_dim(X, self.n_features_in_, "X")
        return X


class KNNDetector(BaseDetector):
    """A detector that compares each query with its ``k`` nearest normal features.

    Subclasses take ``k`` as an ``__init__`` setting. Neighbours are the bank items
    most cosine-similar to the query, searched with faiss unless precomputed
    indices are passed (the workflow searches them once per class).
    """

    k: int

    failed_checks: ClassVar[Mapping[str, str]] = {
        "check_estimators_dtypes": (
            "the check's integer copy of its data truncates a row to all zeros, and kNN "
            "detectors refuse all-zero bank rows with a DataError: their cosine similarity "
            "is undefined (a broken backbone)"
        ),
    }

    def _check_bank(self, bank: object, *, exclude_self: bool) -> np.ndarray:
        """Validated float32 bank (N, D) big enough for ``k`` neighbours.

        Rows of norm zero are refused: their cosine similarity is undefined, and a
        bank of them (a broken backbone) would give every query the same score.
        """
        bank = check_features(bank, "bank")
        check_nonzero_rows(bank, "bank")
        check_bank_size(len(bank), self.k, exclude_self=exclude_self)
        return bank

    def _test_neighbors(
        self, X: np.ndarray, neighbors: np.ndarray | None, bank: np.ndarray | None = None
    ) -> np.ndarray:
        """Indices (n, k) of each query's k most cosine-similar items of ``bank`` (default:
        the fitted bank): the checked precomputed ``neighbors``, else searched."""
        bank = self.bank_ if bank is None else bank
        if neighbors is None:
            return knn_search(bank, X, k=self.k)[1]
        return check_neighbors(neighbors, len(X), len(bank), self.k)


class TrainableDetector(BaseDetector):
    """A detector whose ``fit`` learns parameters.

    What a new trainable method implements, besides :class:`BaseDetector`'s part:

    - ``fit(X, y=None, *, neighbors=None, monitor=None)``: with ``monitor`` (see
      :data:`Monitor`), score the test set after every epoch into ``history_``;
    - ``history_``: one JSON-serialisable dict per epoch, with at least ``epoch``
      and ``loss`` (and, when monitored, ``score_normal_mean`` and
      ``score_anomaly_mean``, which the score-curve figures draw);
    - ``save(path, *, include_bank=True, provenance=None)`` and the class method
      ``load(path, *, bank=None)``, written atomically.
    """

    trainable: ClassVar[bool] = True
    history_: list[dict[str, float]]

    @abstractmethod
    def fit(
        self,
        X: np.ndarray,
        y: object = None,
        *,
        neighbors: np.ndarray | None = None,
        monitor: Monitor | None = None,
    ) -> TrainableDetector:
        """Train on the bank ``X`` (N, D); ``monitor`` records test scores per epoch."""

    @abstractmethod
    def save(
        self,
        path: str | os.PathLike[str],
        *,
        include_bank: bool = True,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        """Write the fitted detector to ``path`` atomically; ``provenance`` (e.g. the
        embedding file and rows of the bank) is stored and checked by :meth:`load`."""

    @classmethod
    @abstractmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        bank: np.ndarray | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> TrainableDetector:
        """A fitted detector from a file of :meth:`save`; ``provenance`` must match the
        saved one when both are given."""


def check_is_fitted(detector: BaseDetector) -> None:
    """Raise :class:`NotFittedError` unless ``fit`` has run on ``detector``."""
    if not hasattr(detector, "bank_"):
        raise NotFittedError(
            f"this {type(detector).__name__} is not fitted yet: call fit(bank) first"
        )


def register(name: str, cls: type[BaseDetector]) -> None:
    """Register ``cls`` as method ``name``: its settings must each be declared once
    (:mod:`cap.detectors.settings`), and the name must not be another class's."""
    if not re.fullmatch(METHOD_PATTERN, name):
        raise TypeError(f"method name {name!r} must match {METHOD_PATTERN}")
    declared, taken = set(cls.declared_settings), set(cls.default_params())
    if declared != taken:
        raise TypeError(
            f"{cls.__qualname__} must declare each __init__ setting in declared_settings: "
            f"undeclared {sorted(taken - declared)}, declared but not taken "
            f"{sorted(declared - taken)}"
        )
    other = REGISTERED.get(name)
    if other is not None and _qualified(other) != _qualified(cls):  # not a module reloaded
        raise TypeError(f"method {name!r} is taken by {_qualified(other)}")
    own = vars(cls).get("name")
    if own is not None and own != name:
        raise TypeError(f"{_qualified(cls)} is method {own!r}, not {name!r}")
    cls.name = name
    REGISTERED[name] = cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
