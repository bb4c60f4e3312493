"""Any scikit-learn-style outlier detector as a capbench detector, adapted as
:mod:`cap.detectors.pyod_adapter` adapts PyOD's: a plugin may name an estimator class
(``fit(X)``, ``score_samples(X)`` with higher = more normal, its settings in
``get_params()``, as ``sklearn.neighbors.LocalOutlierFactor(novelty=True)``) instead of
a :class:`~cap.detectors.base.BaseDetector`.

The adapted class's settings are the estimator's ``__init__`` parameters with their
defaults, each declared with the estimator's own ``_parameter_constraints``, so that
planning checks them with scikit-learn's validation; ``random_state`` is the setting
``seed`` instead (the run's seed). The anomaly score is ``−score_samples``.

Shapes: N = bank items, n = queries, D = feature dimension.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np

from cap.detectors.base import BaseDetector
from cap.detectors.settings import SEED_PARAM, Param
from cap.utils.errors import ConfigError
from cap.utils.validation import check_features

#: What a class needs to be adapted.
METHODS = ("get_params", "fit", "score_samples")


class EstimatorDetector(BaseDetector):
    """A scikit-learn-style outlier detector fitted on the bank; anomaly score =
    ``−score_samples``. Precomputed ``neighbors`` are accepted and ignored. Its subclasses,
    one per adapted estimator class, are made by :func:`adapt`.

    Attributes
    ----------
    model_ : estimator
        The fitted estimator.
    bank_ : float32 array of shape (N, D)
        The validated bank.
    n_features_in_ : int
        D.
    """

    #: The adapted estimator class.
    estimator: ClassVar[type]

    def fit(
        self, X: np.ndarray, y: object = None, *, neighbors: np.ndarray | None = None
    ) -> EstimatorDetector:
        """Fit the estimator on the bank ``X`` (N, D); ``y`` and ``neighbors`` are ignored."""
        self._validate_params()
        settings = self.get_params()
        if "seed" in settings:
            settings["random_state"] = settings.pop("seed")
        model = self.estimator(**settings)
        if not hasattr(model, "score_samples"):  # e.g. LocalOutlierFactor(novelty=False)
            raise ConfigError(
                f"{self.estimator.__name__} has no score_samples with the settings {settings}"
            )
        bank = check_features(X, "bank")
        self.model_ = model.fit(bank)
        self.bank_ = bank
        self.n_features_in_ = bank.shape[1]
        return self

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        return -np.asarray(self.model_.score_samples(X), dtype=np.float64).reshape(len(X))


def is_outlier_detector(candidate: object) -> bool:
    """Whether ``candidate`` is a class :func:`adapt` can adapt (:data:`METHODS`)."""
    return isinstance(candidate, type) and all(
        callable(getattr(candidate, method, None)) for method in METHODS
    )


def adapt(estimator: type, name: str) -> type[EstimatorDetector]:
    """The :class:`EstimatorDetector` of ``estimator``, registered as method ``name``; its
    module is the estimator's, so that the run cache digests the estimator's source."""
    init = inspect.signature(estimator.__init__)
    constraints = getattr(estimator, "_parameter_constraints", {})
    declared: dict[str, Param] = {}
    settings = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for parameter in init.parameters.values():
        if parameter.name == "self" or parameter.kind in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        ):
            continue
        if parameter.default is parameter.empty:
            raise ConfigError(f"{estimator.__name__}: setting {parameter.name!r} has no default")
        if parameter.name == "random_state":
            setting, default = "seed", 0
            declared[setting] = SEED_PARAM
        else:
            setting, default = parameter.name, parameter.default
            declared[setting] = Param(
                f"{estimator.__name__}'s {setting} (its documentation)",
                *_constraints(constraints.get(setting)),
            )
        settings.append(inspect.Parameter(setting, inspect.Parameter.KEYWORD_ONLY, default=default))
    signature = init.replace(parameters=settings)

    def __init__(self: EstimatorDetector, **values: Any) -> None:
        bound = signature.bind(self, **values)
        bound.apply_defaults()
        for setting, value in list(bound.arguments.items())[1:]:
            setattr(self, setting, value)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    attributes = {
        "__init__": __init__,
        "__module__": estimator.__module__,
        "__qualname__": estimator.__qualname__,
        "__doc__": f"{estimator.__qualname__}, adapted: anomaly score = −score_samples.",
        "estimator": estimator,
        "declared_settings": declared,
    }
    return type(estimator.__name__, (EstimatorDetector,), attributes, name=name)


def _constraints(declared: object) -> list[Any]:
    """An estimator's constraints on one parameter, as a list (none: not checked)."""
    return list(declared) if isinstance(declared, list) else []
