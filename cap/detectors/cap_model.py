"""The CAP model (paper §3): adaptive projection head, reformed self-attention, loss.

Pure torch, no file I/O. Shapes: B = batch, K = neighbours per item,
D = feature dimension, N = memory-bank items.

Conventions follow the released code (TabGuigui/CAP): features are row vectors,
so the paper's W_θ z (eq. 1) is ``head(z) = z @ head.weight.T``; the attention
matrices W_Q, W_K are ``w_q.weight.T`` and ``w_k.weight.T``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cap.detectors.cap_choices import CONSTRAINTS, HEADS, INITS
from cap.utils.validation import check_choice


def make_head(dim: int, name: str = "linear", init: str = "xavier") -> nn.Module:
    """The adaptive projection head G_θ (eq. 1), a D→D map without bias.

    ``"linear"`` is a bare ``nn.Linear`` (the paper's choice); the other two are
    the deeper heads of Table 2. ``init="identity"`` starts every matrix at I,
    so an untrained linear head leaves the pretrained space unchanged.
    """
    check_choice(name, "head", HEADS)
    check_choice(init, "init", INITS)
    layers: list[nn.Module] = [nn.Linear(dim, dim, bias=False)]
    if name != "linear":
        layers.append(nn.ReLU())
    if name == "linear_relu_linear":
        layers.append(nn.Linear(dim, dim, bias=False))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            _initialise(layer.weight, init)
    return layers[0] if name == "linear" else nn.Sequential(*layers)


def _initialise(weight: torch.Tensor, init: str) -> None:
    with torch.no_grad():
        if init == "identity":
            weight.copy_(torch.eye(*weight.shape))
        else:
            nn.init.xavier_uniform_(weight)


class ProjectedNeighbors(NamedTuple):
    """Projected memory items (eq. 2) with their attention queries and keys (eq. 3).

    Tensors share a leading shape: (N, D) for a whole bank, (B, K, D) after
    :meth:`take`. ``queries`` and ``keys`` are ``None`` for a model without attention.
    """

    values: torch.Tensor  # (..., D) M̂ = G_θ(M)
    queries: torch.Tensor | None  # (..., D) M̂ W_Q
    keys: torch.Tensor | None  # (..., D) M̂ W_K

    def take(self, index: torch.Tensor) -> ProjectedNeighbors:
        """Rows ``index`` (B, K) of (N, D) tensors, giving (B, K, D) tensors."""
        flat = index.reshape(-1)  # (B*K,); index_select gathers faster than t[index]
        return ProjectedNeighbors(
            *(None if t is None else t.index_select(0, flat).view(*index.shape, -1) for t in self)
        )


class CAPModel(nn.Module):
    """Projection head plus reformed self-attention over the K nearest normal items.

    Parameters
    ----------
    dim : int
        Feature dimension D of the pretrained space.
    head : {"linear", "linear_relu", "linear_relu_linear"}
        Projection head G_θ (eq. 1; Table 2).
    attention : bool
        Weight the neighbours by reformed self-attention (eq. 3-4); ``False`` takes
        their plain mean (Table 2, last row of each block).
    init : {"xavier", "identity"}
        Initialisation of the head's matrices; W_Q and W_K are always Xavier-uniform.
    """

    def __init__(
        self, dim: int, head: str = "linear", attention: bool = True, init: str = "xavier"
    ) -> None:
        super().__init__()
        self.dim = dim
        self.head = make_head(dim, head, init)
        self.w_q: nn.Linear | None = None
        self.w_k: nn.Linear | None = None
        if attention:  # no W_V and no LayerNorm (§3.3)
            self.w_q = nn.Linear(dim, dim, bias=False)
            self.w_k = nn.Linear(dim, dim, bias=False)
            _initialise(self.w_q.weight, "xavier")
            _initialise(self.w_k.weight, "xavier")

    @property
    def attention(self) -> bool:
        """Whether neighbours are weighted by the reformed self-attention."""
        return self.w_q is not None

    def project_neighbors(self, memory: torch.Tensor) -> ProjectedNeighbors:
        """Project memory items (..., D) once, for gathering neighbours from later (eq. 2-3)."""
        values = self.head(memory)  # (..., D)
        if not self.attention:
            return ProjectedNeighbors(values, None, None)
        return ProjectedNeighbors(values, self.w_q(values), self.w_k(values))

    def attention_matrix(self, projected: ProjectedNeighbors) -> torch.Tensor:
        """S = softmax(M̂W_Q (M̂W_K)ᵀ / √D) of eq. (3), shape (B, K, K); rows sum to 1."""
        if projected.queries is None or projected.keys is None:
            raise ValueError("attention_matrix needs a model built with attention=True")
        logits = projected.queries @ projected.keys.transpose(-2, -1)  # (B, K, K)
        return torch.softmax(logits / math.sqrt(self.dim), dim=-1)

    def normal_representation(self, projected: ProjectedNeighbors) -> torch.Tensor:
        """ẑⁿ = Mean_K(M̂ + S M̂) (eq. 4), or Mean_K(M̂) without attention; shape (B, D).

        Computed as Σ_j c_j m̂_j with c_j = (1 + Σ_i S_ij) / K, which equals eq. (4)
        and costs O(K·D) per item instead of the O(K²·D) of forming S M̂.
        """
        values = projected.values  # (B, K, D)
        if not self.attention:
            return values.mean(dim=-2)
        coefficients = self._coefficients(projected)  # (B, K)
        return (coefficients.unsqueeze(-2) @ values).squeeze(-2)  # (B, 1, K) @ (B, K, D)

    def mixing_weights(self, projected: ProjectedNeighbors) -> torch.Tensor:
        """Weight of each neighbour in ẑⁿ, (B, K), summing to 1.

        Eq. (4) gives ẑⁿ = Σ_j (1 + Σ_i S_ij) / K · m̂_j, and the coefficients
        sum to 2 (rows of S sum to 1), so neighbour j weighs (1 + Σ_i S_ij) / (2K);
        uniform 1/K without attention.
        """
        batch, k = projected.values.shape[:2]
        if not self.attention:
            return projected.values.new_full((batch, k), 1.0 / k)
        return self._coefficients(projected) / 2

    def _coefficients(self, projected: ProjectedNeighbors) -> torch.Tensor:
        """c_j = (1 + Σ_i S_ij) / K, (B, K): neighbour j's factor in eq. (4)."""
        k = projected.values.shape[-2]
        return (1.0 + self.attention_matrix(projected).sum(dim=-2)) / k

    def forward(
        self, z: torch.Tensor, neighbors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Adaptive feature ẑ (eq. 2) and adaptive normal representation ẑⁿ (eq. 4).

        Parameters
        ----------
        z : tensor of shape (B, D)
            Pretrained features.
        neighbors : tensor of shape (B, K, D)
            Their K nearest normal pretrained features (un-normalised).

        Returns
        -------
        z_hat, z_hat_n : tensors of shape (B, D)
        """
        assert z.shape[-1] == self.dim and neighbors.shape[-1] == self.dim, "feature dim != D"
        z_hat = self.head(z)  # (B, D)
        return z_hat, self.normal_representation(self.project_neighbors(neighbors))

    def anomaly_score(self, z: torch.Tensor, neighbors: torch.Tensor) -> torch.Tensor:
        """s = 1 − cos(ẑ, ẑⁿ) (eq. 8), shape (B,); higher = more anomalous."""
        return cosine_distance(*self(z, neighbors))

    def neighbor_weights(self, neighbors: torch.Tensor) -> torch.Tensor:
        """Effective weight (B, K) of each of the neighbours (B, K, D) in ẑⁿ (Figures 2 and 7)."""
        assert neighbors.shape[-1] == self.dim, "feature dim != D"
        return self.mixing_weights(self.project_neighbors(neighbors))


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 − cos(a, b) along the last axis: (B, D), (B, D) → (B,) (the terms of eq. 5, 6, 8)."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1)


def cap_objective(
    z: torch.Tensor,
    z_hat: torch.Tensor,
    z_hat_n: torch.Tensor,
    lam: float,
    constraint: str = "mse",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_total = L_S + λΩ (eq. 5-7) from the model outputs, each (B, D).

    L_S = mean(1 − cos(ẑ, ẑⁿ)) (eq. 5); Ω = mean(1 − cos(z, ẑ)) + dist(z, ẑ)
    (eq. 6), where dist is ``"mse"`` (mean over batch and dimensions, the released
    code's ``MSELoss``) or ``"sq_l2"`` (‖z − ẑ‖² averaged over the batch, the
    paper's text). Returns the differentiable total and the detached terms
    ``similarity`` (L_S), ``constraint`` (Ω) and ``total`` as 0-d tensors on the
    model's device, so that training reads them back once per epoch, not per step.
    """
    check_choice(constraint, "constraint", CONSTRAINTS)
    similarity = cosine_distance(z_hat, z_hat_n).mean()
    if constraint == "mse":
        distance = F.mse_loss(z_hat, z)
    else:
        distance = (z - z_hat).pow(2).sum(dim=-1).mean()
    omega = cosine_distance(z, z_hat).mean() + distance
    total = similarity + lam * omega
    terms = {
        "similarity": similarity.detach(),
        "constraint": omega.detach(),
        "total": total.detach(),
    }
    return total, terms


def cap_loss(
    model: CAPModel,
    z: torch.Tensor,
    neighbors: torch.Tensor,
    lam: float,
    constraint: str = "mse",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CAP training loss (eq. 7) of ``model`` on features z (B, D) with neighbours (B, K, D)."""
    z_hat, z_hat_n = model(z, neighbors)
    return cap_objective(z, z_hat, z_hat_n, lam, constraint)
