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

Nothing here imports torch: the workflow plans with the registry alone.
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from cap.detectors.search import knn_search
from cap.utils.errors import ConfigError, NotFittedError
from cap.utils.validation import (
    check_bank_size,
    check_features,
    check_neighbors,
    check_nonzero_rows,
    check_number,
    check_same_dim,
)

#: Registered detectors by method name; filled by subclassing with ``name=...``.
DETECTORS: dict[str, type[BaseDetector]] = {}

#: A test set scored after every epoch of training: ``(X_test, y_test)`` or
#: ``(X_test, y_test, test_neighbors)``, y = 1 for anomalies.
Monitor = tuple[np.ndarray, ...]


class BaseDetector(BaseEstimator, ABC):
    """Anomaly detector on pretrained features; higher scores = more anomalous.

    Subclasses register under a method name with ``class X(BaseDetector, name="x")``,
    implement :meth:`fit` and :meth:`_anomaly_score`, and take their settings
    as keyword-only ``__init__`` arguments stored unchanged under the same names.

    A scikit-learn estimator with the default tags of ``BaseEstimator``: unsupervised
    (``fit`` ignores ``y``), dense 2-D input without NaN or inf, no estimator type. It is
    deliberately not a scikit-learn *outlier detector*: those label items ±1 through a
    ``contamination`` threshold (``predict``, ``fit_predict``), which the benchmark never
    uses (it ranks items by score) and which would add a setting to every detector.
    A ``Pipeline`` scores through :meth:`score_samples`, the negated anomaly score.
    """

    #: Method name in :data:`DETECTORS`.
    name: ClassVar[str]
    #: Whether fitting learns parameters (see :class:`TrainableDetector`).
    trainable: ClassVar[bool] = False
    #: Whether it reads the patch layers' maps (N, h, w, C) instead of pooled features.
    reads_patches: ClassVar[bool] = False
    #: Whether it also scores positions: ``anomaly_maps`` (n, h, w), for pixel metrics.
    localizes: ClassVar[bool] = False
    #: Whether an image's score is the largest of its map's (then read off the maps, once).
    scores_are_map_maxima: ClassVar[bool] = False

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            DETECTORS[name] = cls

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

    def _check_bank(self, bank: object, *, exclude_self: bool) -> np.ndarray:
        """Validated float32 bank (N, D) big enough for ``k`` neighbours.

        Rows of norm zero are refused: their cosine similarity is undefined, and a
        bank of them (a broken backbone) would give every query the same score.
        """
        check_number(self.k, "k", integer=True, minimum=1)
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


def make_detector(method: str, **params: Any) -> BaseDetector:
    """Build the detector registered as ``method`` with settings ``params``."""
    cls = detector_class(method)
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        raise ConfigError(
            f"method {method!r} has no setting(s) {', '.join(unknown)}; "
            f"valid: {', '.join(cls._param_names())}"
        )
    return cls(**params)


def detector_class(method: str) -> type[BaseDetector]:
    """The class registered as ``method``."""
    if method not in DETECTORS:
        raise ConfigError(f"unknown method {method!r}; valid: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[method]
