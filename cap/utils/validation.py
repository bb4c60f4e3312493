"""Input checks shared by the detectors and the neighbour search.

Every check raises :class:`~cap.utils.errors.DataError` (bad arrays) or
:class:`~cap.utils.errors.ConfigError` (bad settings) with a message that names the bad
value and what would be valid, before any work is done or any file is written.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from cap.utils.errors import ConfigError, DataError


def check_features(X: object, name: str) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 array of shape (n_samples, n_features).

    Rejects a sparse matrix, complex numbers (whose imaginary part a cast would drop),
    anything that is not 2-D, empty, or holds NaN/inf (also values that overflow
    float32). No copy is made when ``X`` already fits.
    """
    if hasattr(X, "toarray") and hasattr(X, "nnz"):  # scipy.sparse, without importing it
        raise DataError(f"{name} is a sparse matrix: pass a dense array (X.toarray())")
    if np.iscomplexobj(X):
        raise DataError(f"Complex data not supported: {name} must hold real features")
    try:
        with np.errstate(over="ignore"):
            array = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} is not a numeric array: {error}") from error
    if array.ndim != 2:
        raise DataError(f"{name} must be 2-D (n_samples, n_features); got shape {array.shape}")
    if array.shape[0] == 0:
        raise DataError(f"{name} is empty: shape {array.shape}")
    if array.shape[1] == 0:
        raise DataError(
            f"{name} has 0 feature(s) (shape={array.shape}) while a minimum of 1 is required."
        )
    bad_rows = ~np.isfinite(array).all(axis=1)
    if bad_rows.any():
        raise DataError(
            f"{name} has {int(bad_rows.sum())} row(s) with NaN or inf values "
            f"(first: row {int(np.argmax(bad_rows))}) in shape {array.shape}"
        )
    return np.ascontiguousarray(array)


def check_nonzero_rows(X: np.ndarray, name: str) -> None:
    """Reject rows of norm zero, whose cosine similarity to anything is undefined."""
    zero = ~X.any(axis=1)
    if zero.any():
        raise DataError(
            f"{name} has {int(zero.sum())} all-zero row(s) of {len(X)} (first: row "
            f"{int(np.argmax(zero))}); cosine similarity is undefined for them: check the "
            "backbone and the embedding file"
        )


def check_same_dim(X: np.ndarray, n_features: int, name: str) -> None:
    """Reject ``X`` whose feature dimension differs from the bank's."""
    if X.shape[1] != n_features:
        raise DataError(f"{name} has {X.shape[1]} features per row but the bank has {n_features}")


def check_bank_size(n_bank: int, k: int, *, exclude_self: bool) -> None:
    """Reject a bank too small for ``k`` neighbours.

    Training excludes each item itself (§3.1), so it needs ``k + 1`` items;
    scoring needs ``k``.
    """
    needed = k + 1 if exclude_self else k
    if n_bank < needed:
        purpose = "training (each item's k nearest *other* items)" if exclude_self else "scoring"
        raise DataError(
            f"k={k} needs a bank of at least {needed} items for {purpose}; the bank has {n_bank}"
        )


def check_neighbors(indices: object, n_rows: int, n_bank: int, k: int) -> np.ndarray:
    """Return the first ``k`` columns of precomputed neighbour indices, as int64 (n_rows, k).

    ``indices`` must be an integer array of shape (n_rows, >= k) with values in
    ``[0, n_bank)``.
    """
    array = np.asarray(indices)
    if array.ndim != 2 or array.shape[0] != n_rows:
        raise DataError(
            f"neighbors must have shape ({n_rows}, >={k}) (one row per item); "
            f"got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"neighbors must hold integer indices; got dtype {array.dtype}")
    if array.shape[1] < k:
        raise DataError(f"neighbors has {array.shape[1]} columns but k={k} are needed")
    array = array[:, :k]
    if array.size and (array.min() < 0 or array.max() >= n_bank):
        raise DataError(
            f"neighbors holds indices in [{array.min()}, {array.max()}]; "
            f"valid: [0, {n_bank - 1}] for a bank of {n_bank} items"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Reject ``value`` unless it is one of ``choices`` (ConfigError lists them)."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
    return value


def check_number(
    value: object,
    name: str,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> None:
    """Reject a setting that is not a number in the given range (bools are not numbers)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(
            f"{name} must be {'an integer' if integer else 'a number'}; got {value!r}"
        )
    too_small = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    too_large = maximum is not None and value > maximum
    if too_small or too_large or value != value:  # value != value: NaN
        low = "" if minimum is None else f"{'>' if exclusive_minimum else '>='} {minimum}"
        high = "" if maximum is None else f"<= {maximum}"
        bounds = " and ".join(part for part in (low, high) if part)
        raise ConfigError(f"{name} must be {bounds}; got {value!r}")


def check_not_constant(X: np.ndarray, name: str) -> None:
    """Reject a bank whose rows are all equal (a broken backbone): it has no spread to model."""
    if len(X) > 0 and not np.ptp(X, axis=0).any():  # no feature varies
        kind = "all-zero" if not X[0].any() else "identical"
        raise DataError(
            f"all {len(X)} rows of {name} are {kind}: there is no spread of normal features "
            "to model; check the backbone and the embedding file"
        )
