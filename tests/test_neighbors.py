"""Exact neighbour search against brute force, including self-exclusion with duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from cap.detectors.search import chunk_slices, knn_search, l2_knn_search, l2_normalize
from cap.utils.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("single_thread_math")


def _brute_force_cosine(bank: np.ndarray, queries: np.ndarray) -> np.ndarray:
    unit_bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return unit_queries @ unit_bank.T  # (n, N)


@pytest.fixture
def bank() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, 12)).astype(np.float32)


def test_queries_match_brute_force(bank: np.ndarray) -> None:
    queries = np.random.default_rng(1).normal(size=(30, 12)).astype(np.float32)
    similarities, indices = knn_search(bank, queries, k=7)
    full = _brute_force_cosine(bank, queries)
    expected = np.argsort(-full, axis=1)[:, :7]
    assert indices.dtype == np.int64 and similarities.dtype == np.float32
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(similarities, np.take_along_axis(full, expected, 1), atol=1e-5)
    assert (np.diff(similarities, axis=1) <= 0).all()


def test_queries_from_the_bank_find_themselves_first(bank: np.ndarray) -> None:
    _, indices = knn_search(bank, bank[:10], k=3)
    np.testing.assert_array_equal(indices[:, 0], np.arange(10))


def test_self_search_excludes_each_item_and_matches_brute_force(bank: np.ndarray) -> None:
    similarities, indices = knn_search(bank, k=5)
    full = _brute_force_cosine(bank, bank)
    np.fill_diagonal(full, -np.inf)
    expected = np.argsort(-full, axis=1)[:, :5]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(similarities, np.take_along_axis(full, expected, 1), atol=1e-5)


def test_self_exclusion_keeps_duplicates_of_an_item(bank: np.ndarray) -> None:
    duplicated = np.concatenate([bank[:50], bank[:50], bank[:50]])  # rows i, i+50, i+100 equal
    similarities, indices = knn_search(duplicated, k=4)
    n = len(duplicated)
    assert indices.shape == (n, 4)
    assert not (indices == np.arange(n)[:, None]).any()
    copies = {(i % 50, i % 50 + 50, i % 50 + 100) for i in range(n)}
    for i in range(n):
        twins = set(next(c for c in copies if i in c)) - {i}
        assert set(indices[i, :2]) == twins  # the two other copies come first
        np.testing.assert_allclose(similarities[i, :2], 1.0, atol=1e-5)


def test_self_exclusion_with_more_copies_than_k() -> None:
    bank = np.repeat(np.eye(3, dtype=np.float32) + 0.1, 6, axis=0)  # 3 vectors, 6 copies each
    similarities, indices = knn_search(bank, k=3)
    n = len(bank)
    assert indices.shape == (n, 3)
    assert not (indices == np.arange(n)[:, None]).any()
    np.testing.assert_array_equal(indices // 6, np.repeat(np.arange(3), 6)[:, None].repeat(3, 1))
    np.testing.assert_allclose(similarities, 1.0, atol=1e-5)


def test_search_is_scale_invariant_and_leaves_inputs_unchanged(bank: np.ndarray) -> None:
    queries = bank[:20] * 3.0 + 1.0
    before = bank.copy(), queries.copy()
    _, indices = knn_search(bank, queries, k=4)
    _, scaled = knn_search(bank * 10.0, queries, k=4)
    np.testing.assert_array_equal(indices, scaled)
    np.testing.assert_array_equal(bank, before[0])
    np.testing.assert_array_equal(queries, before[1])


def test_l2_search_matches_brute_force(bank: np.ndarray) -> None:
    queries = np.random.default_rng(2).normal(size=(25, 12)).astype(np.float32)
    distances, indices = l2_knn_search(bank, queries, k=3)
    full = ((queries[:, None, :] - bank[None]) ** 2).sum(-1)
    expected = np.argsort(full, axis=1)[:, :3]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances, np.take_along_axis(full, expected, 1), rtol=1e-4)


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows() -> None:
    X = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(X), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_chunk_slices_cover_all_rows_within_budget() -> None:
    slices = list(chunk_slices(10, elements_per_row=4, budget=12))
    assert [(s.start, s.stop) for s in slices] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert [(s.start, s.stop) for s in chunk_slices(2, 100, budget=10)] == [(0, 1), (1, 2)]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda b: knn_search(b, k=len(b)), DataError, "at least 201 items for training"),
        (lambda b: knn_search(b, b[:3], k=len(b) + 1), DataError, "at least 201 items for scoring"),
        (lambda b: knn_search(b, k=0), ConfigError, "k must be >= 1"),
        (
            lambda b: knn_search(b, b[:3, :5], k=2),
            DataError,
            "5 features per row but the bank has 12",
        ),
        (lambda b: knn_search(b[:0], k=1), DataError, "bank is empty"),
        (lambda b: knn_search(np.where(b > 2.5, np.nan, b), k=1), DataError, r"bank has \d+ row"),
        (lambda b: l2_knn_search(b, b[:2] * np.inf, k=1), DataError, "queries has 2 row"),
    ],
)
def test_bad_input_raises_clear_errors(bank, call, error, message: str) -> None:
    with pytest.raises(error, match=message):
        call(bank)


def test_scoring_may_use_the_whole_bank(bank: np.ndarray) -> None:
    _, indices = knn_search(bank, bank[:2], k=len(bank))
    assert sorted(indices[0]) == list(range(len(bank)))
