"""CAPModel and the loss against a direct numpy computation of the paper's eq. (1)-(8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cap import CAPModel
from cap.detectors.cap_model import cap_loss, make_head
from cap.detectors.cap_training import batch_objective, epoch_layout
from cap.utils.errors import ConfigError

pytestmark = pytest.mark.usefixtures("single_thread_math")

B, K, D = 5, 4, 8


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def reference(z, neighbors, W, W_q=None, W_k=None):
    """Eq. (1)-(4) in numpy, row-vector form: ẑ = z Wᵀ, M̂ = M Wᵀ; returns ẑ, ẑⁿ, S."""
    z_hat = np.einsum("de,be->bd", W, z)  # eq. (1)-(2)
    M_hat = np.einsum("de,bke->bkd", W, neighbors)
    if W_q is None:
        return z_hat, M_hat.mean(axis=1), None
    Q = np.einsum("de,bke->bkd", W_q, M_hat)
    Kt = np.einsum("de,bke->bkd", W_k, M_hat)
    logits = np.einsum("bid,bjd->bij", Q, Kt) / math.sqrt(z.shape[-1])
    S = np.exp(logits - logits.max(-1, keepdims=True))
    S /= S.sum(-1, keepdims=True)  # eq. (3): softmax over the last axis
    A = np.einsum("bij,bjd->bid", S, M_hat)
    return z_hat, (M_hat + A).mean(axis=1), S  # eq. (4)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(B, D, generator=generator, dtype=torch.float64)
    neighbors = torch.randn(B, K, D, generator=generator, dtype=torch.float64)
    return z, neighbors


def _model(attention: bool = True, **kwargs) -> CAPModel:
    torch.manual_seed(1)
    return CAPModel(D, attention=attention, **kwargs).double()


def _weights(model: CAPModel) -> dict[str, np.ndarray | None]:
    get = lambda layer: None if layer is None else layer.weight.detach().numpy()  # noqa: E731
    return {"W": get(model.head), "W_q": get(model.w_q), "W_k": get(model.w_k)}


@pytest.mark.parametrize("attention", [True, False])
def test_forward_matches_numpy(attention: bool) -> None:
    model = _model(attention)
    z, neighbors = _inputs()
    z_hat, z_hat_n = model(z, neighbors)
    expected_z_hat, expected_z_hat_n, _ = reference(z.numpy(), neighbors.numpy(), **_weights(model))
    np.testing.assert_allclose(z_hat.detach().numpy(), expected_z_hat, rtol=1e-10)
    np.testing.assert_allclose(z_hat_n.detach().numpy(), expected_z_hat_n, rtol=1e-10)


def test_anomaly_score_is_eq8() -> None:
    model = _model()
    z, neighbors = _inputs()
    z_hat, z_hat_n, _ = reference(z.numpy(), neighbors.numpy(), **_weights(model))
    scores = model.anomaly_score(z, neighbors).detach().numpy()
    assert scores.shape == (B,)
    np.testing.assert_allclose(scores, 1 - _cos(z_hat, z_hat_n), rtol=1e-10)


def test_neighbor_weights_are_normalised_column_sums_of_attention() -> None:
    model = _model()
    z, neighbors = _inputs()
    _, z_hat_n, S = reference(z.numpy(), neighbors.numpy(), **_weights(model))
    weights = model.neighbor_weights(neighbors).detach().numpy()
    assert weights.shape == (B, K)
    np.testing.assert_allclose(weights, (1 + S.sum(axis=1)) / (2 * K), rtol=1e-10)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    # the weights rebuild ẑⁿ (up to the factor 2 of eq. 4's residual)
    M_hat = model.head(neighbors).detach().numpy()
    np.testing.assert_allclose(2 * np.einsum("bk,bkd->bd", weights, M_hat), z_hat_n, rtol=1e-10)
    assert not np.allclose(weights, 1 / K)  # attention does weigh neighbours differently


def test_neighbor_weights_are_uniform_without_attention() -> None:
    weights = _model(attention=False).neighbor_weights(_inputs()[1]).detach().numpy()
    np.testing.assert_allclose(weights, np.full((B, K), 1 / K))


def test_projecting_a_bank_once_equals_projecting_each_batch() -> None:
    model = _model()
    generator = torch.Generator().manual_seed(3)
    bank = torch.randn(20, D, generator=generator, dtype=torch.float64)
    index = torch.randint(20, (B, K), generator=generator)
    direct = model.normal_representation(model.project_neighbors(bank[index]))
    gathered = model.normal_representation(model.project_neighbors(bank).take(index))
    torch.testing.assert_close(gathered, direct)


@pytest.mark.parametrize("constraint", ["mse", "sq_l2"])
@pytest.mark.parametrize("attention", [True, False])
def test_batch_objective_equals_cap_loss_on_the_batchs_items(constraint, attention) -> None:
    """Training projects each distinct bank row of a batch once (a row shared by several
    items' neighbour lists too): the loss and its gradients are cap_loss's."""
    model = _model(attention)
    generator = torch.Generator().manual_seed(5)
    bank = torch.randn(12, D, generator=generator, dtype=torch.float64)
    index = np.stack([np.roll(np.arange(12), -i)[1 : K + 1] for i in range(12)])  # overlaps
    order = np.random.default_rng(0).permutation(12)
    batch = epoch_layout(order, index, batch_size=5, device=torch.device("cpu"))[1]
    items = torch.from_numpy(order[5:10])
    assert len(batch.rows) < len(items) * (1 + K)  # shared rows, projected once
    total, terms = batch_objective(model, bank, batch, 2.0, constraint)
    grads = torch.autograd.grad(total, list(model.parameters()))
    direct, direct_terms = cap_loss(model, bank[items], bank[index[items]], 2.0, constraint)
    direct_grads = torch.autograd.grad(direct, list(model.parameters()))
    torch.testing.assert_close(total, direct, rtol=1e-12, atol=0)
    for name in terms:
        torch.testing.assert_close(terms[name], direct_terms[name], rtol=1e-12, atol=0)
    for ours, theirs in zip(grads, direct_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("constraint", ["mse", "sq_l2"])
def test_loss_matches_numpy(constraint: str) -> None:
    model, lam = _model(), 2.0
    z, neighbors = _inputs()
    z_hat, z_hat_n, _ = reference(z.numpy(), neighbors.numpy(), **_weights(model))
    zn = z.numpy()
    similarity = np.mean(1 - _cos(z_hat, z_hat_n))  # eq. (5)
    squared = (zn - z_hat) ** 2
    distance = squared.mean() if constraint == "mse" else squared.sum(axis=1).mean()
    omega = np.mean(1 - _cos(zn, z_hat)) + distance  # eq. (6)
    total, terms = cap_loss(model, z, neighbors, lam, constraint)
    assert set(terms) == {"similarity", "constraint", "total"}
    np.testing.assert_allclose(terms["similarity"], similarity, rtol=1e-10)
    np.testing.assert_allclose(terms["constraint"], omega, rtol=1e-10)
    np.testing.assert_allclose(total.item(), similarity + lam * omega, rtol=1e-10)  # eq. (7)
    assert terms["total"] == total.item()


def test_loss_without_constraint_is_similarity_only() -> None:
    total, terms = cap_loss(_model(), *_inputs(), lam=0.0)
    assert total.item() == pytest.approx(terms["similarity"].item())


def test_loss_reaches_every_parameter() -> None:
    model = _model()
    total, _ = cap_loss(model, *_inputs(), lam=2.0)
    total.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_linear_head_and_attention_are_bias_free_square_maps() -> None:
    model = CAPModel(D)
    for layer in (model.head, model.w_q, model.w_k):
        assert isinstance(layer, nn.Linear)
        assert layer.bias is None and layer.weight.shape == (D, D)
    assert sum(p.numel() for p in model.parameters()) == 3 * D * D  # no W_V, no LayerNorm
    assert model.attention
    no_attention = CAPModel(D, attention=False)
    assert not no_attention.attention and no_attention.w_q is None
    assert sum(p.numel() for p in no_attention.parameters()) == D * D


def test_deeper_heads_match_numpy() -> None:
    z = _inputs()[0]
    torch.manual_seed(0)
    relu = make_head(D, "linear_relu").double()
    W1 = relu[0].weight.detach().numpy()
    np.testing.assert_allclose(
        relu(z).detach().numpy(), np.maximum(z.numpy() @ W1.T, 0), rtol=1e-10
    )
    deep = make_head(D, "linear_relu_linear").double()
    W1, W2 = deep[0].weight.detach().numpy(), deep[2].weight.detach().numpy()
    np.testing.assert_allclose(
        deep(z).detach().numpy(), np.maximum(z.numpy() @ W1.T, 0) @ W2.T, rtol=1e-10
    )


def test_identity_init_leaves_the_pretrained_space_unchanged() -> None:
    model = CAPModel(D, init="identity").double()
    z, _ = _inputs()
    torch.testing.assert_close(model.head(z), z)
    assert not torch.equal(model.w_q.weight, torch.eye(D))  # attention stays Xavier


def test_xavier_init_is_seeded_and_within_bounds() -> None:
    torch.manual_seed(7)
    first = CAPModel(64)
    torch.manual_seed(7)
    second = CAPModel(64)
    bound = math.sqrt(6 / (64 + 64))
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
        assert a.abs().max() <= bound
        assert a.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


@pytest.mark.parametrize(
    ("build", "listed"),
    [
        (lambda: CAPModel(D, head="mlp"), "linear, linear_relu, linear_relu_linear"),
        (lambda: CAPModel(D, init="zeros"), "xavier, identity"),
        (
            lambda: cap_loss(CAPModel(D), *map(torch.Tensor.float, _inputs()), 1.0, "l1"),
            "mse, sq_l2",
        ),
    ],
)
def test_unknown_names_list_the_valid_ones(build, listed: str) -> None:
    with pytest.raises(ConfigError, match=listed):
        build()
