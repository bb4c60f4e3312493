"""The distance to the k-th nearest normal feature (Ramaswamy, Rastogi and Shim, 2000), as
a scikit-learn-style outlier detector: a capbench plugin (see pyproject.toml).

capbench needs three things of such a class: ``get_params()`` (its settings, which a
config may set; ``BaseEstimator`` gives it from ``__init__``), ``fit(X)`` on the normal
features and ``score_samples(X)``, higher for more normal items (scikit-learn's sign;
capbench negates it). ``_parameter_constraints`` declares each setting's values:
capbench checks a config against it before any job runs.
"""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted


class KthNeighborDistance(BaseEstimator):
    """Minus the distance of an item to its k-th nearest normal feature.

    Parameters
    ----------
    n_neighbors : int, default=5
        k: the rank of the normal feature whose distance scores an item.
    metric : {"cosine", "euclidean"}, default="cosine"
        "cosine": features are scaled to unit norm first, so that neighbours are the
        most cosine-similar ones; "euclidean": the features as they are.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions({"cosine", "euclidean"})],
    }

    def __init__(self, n_neighbors: int = 5, metric: str = "cosine") -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric

    def fit(self, X: np.ndarray, y: object = None) -> KthNeighborDistance:
        """Index the normal features ``X`` of shape (n_samples, n_features)."""
        self._validate_params()
        X = check_array(X)
        self.n_features_in_ = X.shape[1]
        self.neighbors_ = NearestNeighbors(n_neighbors=self.n_neighbors).fit(self._prepare(X))
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Minus each item's distance to its k-th nearest normal feature, of shape
        (n_samples,): higher = more normal."""
        check_is_fitted(self)
        distances, _ = self.neighbors_.kneighbors(self._prepare(check_array(X)))
        return -distances[:, -1]

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        return normalize(X) if self.metric == "cosine" else X
