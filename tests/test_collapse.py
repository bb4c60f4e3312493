"""The pattern collapse of §3.4's Proposition, and the constraint Ω (eq. 6) that prevents it.

With λ = 0 the similarity loss L_S alone drives the linear head towards a
degenerate map: one singular direction carries nearly all of W's energy and ẑ
stops pointing where z does. With λ = 2, W stays full-rank and close to the
pretrained space. (An independent implementation measured a top singular-value
share of 0.90 vs 0.09 and cos(z, ẑ) of 0.0 vs 0.99 on this set-up.)
"""

from __future__ import annotations

import numpy as np
import pytest

from cap import CAPDetector

pytestmark = pytest.mark.usefixtures("single_thread_math")


def _head_diagnostics(detector: CAPDetector, bank: np.ndarray) -> tuple[float, float, int]:
    """Top singular value's share of ‖W‖²_F, mean cos(z, ẑ) over the bank, numerical rank of W."""
    W = detector.model_.head.weight.detach().numpy()  # ẑ = z Wᵀ
    singular_values = np.linalg.svd(W, compute_uv=False)
    energy = singular_values**2
    z_hat = bank @ W.T
    cosine = (z_hat * bank).sum(1) / (np.linalg.norm(z_hat, axis=1) * np.linalg.norm(bank, axis=1))
    rank = int((singular_values > 1e-2 * singular_values[0]).sum())
    return float(energy[0] / energy.sum()), float(cosine.mean()), rank


@pytest.fixture(scope="module")
def bank(make_blobs) -> np.ndarray:
    return make_blobs(n_bank=1000, n_test=2, dim=32).bank


def _train(bank: np.ndarray, lam: float) -> CAPDetector:
    settings = dict(k=8, lam=lam, epochs=20, lr=5e-3, lr_decay=None, init="xavier", device="cpu")
    return CAPDetector(**settings).fit(bank)


def test_similarity_loss_alone_collapses_the_head(bank: np.ndarray) -> None:
    detector = _train(bank, lam=0.0)
    share, cosine, _ = _head_diagnostics(detector, bank)
    assert share > 0.7
    assert abs(cosine) < 0.3
    assert detector.history_[-1]["similarity"] < 1e-3  # the trivial solution: ẑ ≈ ẑⁿ for all


def test_constraint_keeps_the_head_full_rank_and_aligned(bank: np.ndarray) -> None:
    detector = _train(bank, lam=2.0)
    share, cosine, rank = _head_diagnostics(detector, bank)
    assert share < 0.2
    assert cosine > 0.95
    assert rank == bank.shape[1]
