"""Exact nearest-neighbour search in the pretrained space (paper §3.1), with faiss.

CAP compares items by cosine similarity, i.e. inner product of L2-normalised
features (``IndexFlatIP``); DN2 by squared Euclidean distance (``IndexFlatL2``).
Searches are exhaustive (exact) and run once per bank/query set, not per batch.
A GPU index is used when faiss was built with CUDA and sees a GPU.

Shapes: N = bank items, n = queries, D = feature dimension, k = neighbours.
"""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np

from cap.utils.validation import check_bank_size, check_features, check_number, check_same_dim

#: faiss GPU indexes return at most this many neighbours per query.
_GPU_MAX_K = 2048

#: Elements (floats) per gathered neighbour block; bounds memory when scoring in chunks.
GATHER_BUDGET = 2**22


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` (n, D) scaled to unit L2 norm, as a new float32 array.

    All-zero rows stay zero (their cosine similarity to anything is 0).
    """
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)  # (n, 1)
    return X / np.maximum(norms, np.finfo(np.float32).tiny)


def knn_search(
    bank: np.ndarray, queries: np.ndarray | None = None, *, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` bank items most cosine-similar to each query (§3.1, top-K addressing).

    Parameters
    ----------
    bank : array of shape (N, D)
        Memory bank of normal features (not modified).
    queries : array of shape (n, D), optional
        Items to search for. ``None`` searches the bank for itself with each item
        excluded from its own list (training, §3.1: M_i = [m_i2, ..., m_i(k+1)]);
        exactly row ``i`` is removed from row ``i``, so a duplicate of item ``i``
        is kept as a neighbour.
    k : int
        Neighbours per query.

    Returns
    -------
    similarities : float32 array of shape (n, k)
        Cosine similarities, decreasing along each row.
    indices : int64 array of shape (n, k)
        Row indices into ``bank``.
    """
    check_number(k, "k", integer=True, minimum=1)
    bank = check_features(bank, "bank")
    exclude_self = queries is None
    check_bank_size(len(bank), k, exclude_self=exclude_self)
    normalized_bank = l2_normalize(bank)
    if exclude_self:
        normalized_queries = normalized_bank
    else:
        queries = check_features(queries, "queries")
        check_same_dim(queries, bank.shape[1], "queries")
        normalized_queries = l2_normalize(queries)
    width = k + 1 if exclude_self else k  # the self match takes one column
    index = _exact_index(faiss.IndexFlatIP(bank.shape[1]), width)
    index.add(normalized_bank)
    similarities, indices = index.search(normalized_queries, width)
    if exclude_self:
        similarities, indices = _drop_self(similarities, indices)
    return similarities, indices.astype(np.int64, copy=False)


def l2_knn_search(
    bank: np.ndarray, queries: np.ndarray, *, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` bank items nearest to each query in squared Euclidean distance (DN2).

    Returns squared distances (n, k), increasing along each row, and int64
    indices (n, k) into ``bank`` of shape (N, D).
    """
    check_number(k, "k", integer=True, minimum=1)
    bank = check_features(bank, "bank")
    queries = check_features(queries, "queries")
    check_same_dim(queries, bank.shape[1], "queries")
    check_bank_size(len(bank), k, exclude_self=False)
    index = _exact_index(faiss.IndexFlatL2(bank.shape[1]), k)
    index.add(bank)
    distances, indices = index.search(queries, k)
    return distances, indices.astype(np.int64, copy=False)


def chunk_slices(
    n_rows: int, elements_per_row: int, budget: int = GATHER_BUDGET
) -> Iterator[slice]:
    """Consecutive row slices covering ``range(n_rows)``, each within ``budget`` elements."""
    step = max(1, budget // max(1, elements_per_row))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _exact_index(index: faiss.Index, k: int) -> faiss.Index:
    """``index`` moved to all GPUs when faiss has any (and supports this ``k``)."""
    if faiss.get_num_gpus() > 0 and k <= _GPU_MAX_K:
        return faiss.index_cpu_to_all_gpus(index)
    return index


def _drop_self(similarities: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove row ``i``'s own index from row ``i`` of a (n, k+1) self-search.

    Where ``i`` is absent (more than k duplicates of it tie), the last column goes.
    """
    is_self = indices == np.arange(len(indices))[:, None]  # (n, k+1)
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    n, width = indices.shape
    return (
        similarities[keep].reshape(n, width - 1),
        indices[keep].reshape(n, width - 1),
    )
