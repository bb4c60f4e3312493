"""CAP's training loop and batched read-outs (torch): what ``CAPDetector`` runs.

Shapes: N = bank items, n = queries, B = batch, K = neighbours, U = distinct bank
rows of a batch, D = feature dimension.

Training projects each distinct bank row of a batch (its items and their
neighbours) once. The batches of an epoch are laid out on the host and sent to
the device in one transfer; the next epoch's layout is computed while the device
still runs the current one, and the loss terms stay on the device until the
epoch's end, so a step never waits for the device (no ``torch.unique``, no
``.item()`` per step) and the device never waits for the host between epochs
(unless a test set is monitored). Read-outs project the bank once per call and
gather each query's projected neighbours from it, O(N·D² + n·K²·D), instead of
O(n·K·D²).

Precision of the training matmuls (``TrainingSettings.matmul_precision``):
``"highest"`` (the default) is IEEE float32 everywhere; ``"high"`` lets CUDA use
TF32 for float32 matmuls and changes nothing on a CPU; ``"bf16"`` runs the
projections (the three D × D matrices, forward and backward) under bfloat16
autocast, on any device, and everything after them in float32. Read-outs (scores)
always run in float32.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cap.detectors.base import Monitor
from cap.detectors.cap_model import CAPModel, ProjectedNeighbors, cap_objective, cosine_distance
from cap.detectors.search import chunk_slices

logger = logging.getLogger(__name__)

#: Maps a chunk's projected queries ẑ (c, D) and gathered neighbours (c, K, D) to outputs.
Readout = Callable[[CAPModel, torch.Tensor, ProjectedNeighbors], tuple[torch.Tensor, ...]]
#: Loss terms of :func:`cap.detectors.cap_model.cap_objective`, in history order.
LOSS_TERMS: tuple[str, ...] = ("total", "similarity", "constraint")


@dataclass(frozen=True)
class TrainingSettings:
    """How CAP is optimised (Appendix B.1 and the released code)."""

    epochs: int  # passes over the bank
    lr: float  # Adam learning rate
    lr_decay: float | None  # ExponentialLR γ per epoch; None = constant
    batch_size: int  # bank items per step
    lam: float  # λ, weight of the constraint Ω (eq. 7)
    constraint: str  # distance term of Ω: "mse" or "sq_l2"
    seed: int  # seeds the batch order (the model's init is seeded by the caller)
    matmul_precision: str = "highest"  # a cap_choices.MATMUL_PRECISIONS entry

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainingSettings:
        """The fields, by name, from a detector's settings (``CAPDetector.get_params()``);
        the other settings are ignored."""
        return cls(**{field.name: params[field.name] for field in fields(cls)})


@dataclass(frozen=True)
class BatchLayout:
    """One step's items and the distinct bank rows it projects, as device tensors."""

    items: torch.Tensor  # (B,) bank rows of the batch
    rows: torch.Tensor  # (U,) distinct rows among the items and their neighbours
    position: torch.Tensor  # (B, 1+K) where each item (column 0) and neighbour sits in rows


def train(
    model: CAPModel,
    bank: torch.Tensor,
    train_index: np.ndarray,
    settings: TrainingSettings,
    monitor: Monitor | None = None,
) -> list[dict[str, float]]:
    """Adam with per-epoch ExponentialLR (Appendix B.1; released code); returns the history.

    ``bank`` (N, D) lives on the model's device; ``train_index`` (N, K) holds each
    item's neighbours (self excluded). With ``monitor`` (checked and complete: test features
    (n, D), anomaly flags (n,) and test neighbours (n, K)), the test set is scored after
    every epoch (Figures 3, 6).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, fused=True)
    scheduler = (
        None
        if settings.lr_decay is None
        else torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=settings.lr_decay)
    )
    generator = torch.Generator().manual_seed(settings.seed)

    def next_layout() -> list[BatchLayout]:
        order = torch.randperm(len(bank), generator=generator).numpy()  # (N,)
        return epoch_layout(order, train_index, settings.batch_size, bank.device)

    history: list[dict[str, float]] = []
    batches = next_layout()
    epochs = tqdm(range(1, settings.epochs + 1), desc="CAP epochs", leave=False, disable=None)
    for epoch in epochs:
        lr = optimizer.param_groups[0]["lr"]
        with float32_matmul_precision(settings.matmul_precision, bank.device):
            sums = _train_epoch(model, optimizer, bank, batches, settings)  # queued, not run yet
        n_batches = len(batches)
        if epoch < settings.epochs:
            batches = next_layout()  # on the host, while the device runs this epoch
        means = (sums / n_batches).tolist()  # the epoch's one read-back
        terms = dict(zip(LOSS_TERMS, means, strict=True))
        record: dict[str, float] = {
            "epoch": epoch,
            "loss": terms["total"],
            "similarity": terms["similarity"],
            "constraint": terms["constraint"],
            "lr": lr,
        }
        if monitor is not None:
            record.update(score_summary(model, bank, monitor))
        summary = ", ".join(f"{key} {value:.5g}" for key, value in record.items() if key != "epoch")
        logger.info("epoch %d/%d: %s", epoch, settings.epochs, summary)
        history.append(record)
        if scheduler is not None:
            scheduler.step()
    return history


def epoch_layout(
    order: np.ndarray, train_index: np.ndarray, batch_size: int, device: torch.device
) -> list[BatchLayout]:
    """The batches of one epoch, in ``order`` (N,), with their distinct rows, on ``device``.

    Computed on the host in one go, so that the device never waits for a
    data-dependent shape in the middle of an epoch, and sent to the device as one
    packed array (one transfer per epoch, not three per step); each layout's
    tensors are views into it.
    """
    pieces = []
    for start in range(0, len(order), batch_size):
        items = order[start : start + batch_size]  # (B,)
        members = np.concatenate([items[:, None], train_index[items]], axis=1)  # (B, 1+K)
        rows, position = np.unique(members, return_inverse=True)  # (U,), (B*(1+K),)
        pieces.append((items, rows, position.reshape(members.shape)))
    packed = _to_device(
        np.concatenate([part.ravel() for piece in pieces for part in piece]), device
    )
    layouts = []
    offset = 0
    for piece in pieces:
        views = []
        for part in piece:
            views.append(packed[offset : offset + part.size].view(part.shape))
            offset += part.size
        layouts.append(BatchLayout(*views))
    return layouts


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
    if device.type == "cpu":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def _train_epoch(
    model: CAPModel,
    optimizer: torch.optim.Optimizer,
    bank: torch.Tensor,
    batches: list[BatchLayout],
    settings: TrainingSettings,
) -> torch.Tensor:
    """One pass over the shuffled bank; returns the loss terms (LOSS_TERMS order) summed
    over batches, (3,), on the device: nothing here waits for the device."""
    model.train()
    sums = torch.zeros(len(LOSS_TERMS), device=bank.device)  # read back once per epoch
    for batch in tqdm(batches, desc="batches", leave=False, disable=None):
        optimizer.zero_grad()
        loss, terms = batch_objective(
            model, bank, batch, settings.lam, settings.constraint, settings.matmul_precision
        )
        loss.backward()
        optimizer.step()
        sums += torch.stack([terms[name] for name in LOSS_TERMS])
    return sums


@contextmanager
def float32_matmul_precision(precision: str, device: torch.device) -> Iterator[None]:
    """torch's float32 matmul precision for a block on ``device``, restored afterwards.

    On CUDA: TF32 for ``"high"``, IEEE float32 for ``"highest"`` and ``"bf16"`` (whose
    projections run under autocast; see :func:`project_rows`). On a CPU nothing is
    changed (``"high"`` is a no-op there), so the CPU path stays bit-identical.
    """
    if device.type != "cuda":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "high" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def project_rows(model: CAPModel, rows: torch.Tensor, precision: str) -> ProjectedNeighbors:
    """``model.project_neighbors(rows)`` (U, D) → (U, D) each; with ``"bf16"``, under bfloat16
    autocast (outputs cast back to float32, so that the rest of the loss is float32)."""
    if precision != "bf16":
        return model.project_neighbors(rows)
    with torch.autocast(rows.device.type, dtype=torch.bfloat16):
        projected = model.project_neighbors(rows)
    return ProjectedNeighbors(*(None if t is None else t.float() for t in projected))


def batch_objective(
    model: CAPModel,
    bank: torch.Tensor,
    batch: BatchLayout,
    lam: float,
    constraint: str,
    precision: str = "highest",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CAP loss (eq. 7) of one batch, projecting each of its distinct bank rows once.

    Equals ``cap_loss(model, bank[items], bank[neighbors of items], ...)`` (exactly, in
    float32, with ``precision="highest"``).
    """
    projected = project_rows(model, bank[batch.rows], precision)  # (U, D) each
    z_hat = projected.values[batch.position[:, 0]]  # (B, D)
    z_hat_n = model.normal_representation(projected.take(batch.position[:, 1:]))  # (B, D)
    return cap_objective(bank[batch.items], z_hat, z_hat_n, lam, constraint)


@torch.no_grad()
def read_out(
    model: CAPModel, bank: torch.Tensor, X: np.ndarray, index: np.ndarray, readout: Readout
) -> tuple[np.ndarray, ...]:
    """Project the bank (N, D) once, then apply ``readout`` to chunks of queries (n, D).

    ``index`` (n, K) holds each query's neighbours in the bank. Chunks keep the
    gathered (c, K, D) neighbour tensors within a fixed budget.
    """
    device = bank.device
    memory = model.project_neighbors(bank)  # (N, D) each
    parts = []
    for rows in chunk_slices(len(X), index.shape[1] * X.shape[1]):
        z_hat = model.head(torch.from_numpy(X[rows]).to(device))  # (c, D)
        gathered = memory.take(torch.from_numpy(index[rows]).to(device))  # (c, K, D)
        parts.append([out.cpu().numpy() for out in readout(model, z_hat, gathered)])
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def score_readout(
    model: CAPModel, z_hat: torch.Tensor, gathered: ProjectedNeighbors
) -> tuple[torch.Tensor]:
    """s = 1 − cos(ẑ, ẑⁿ) (eq. 8), (c,)."""
    return (cosine_distance(z_hat, model.normal_representation(gathered)),)


def weights_readout(
    model: CAPModel, z_hat: torch.Tensor, gathered: ProjectedNeighbors
) -> tuple[torch.Tensor]:
    """Each neighbour's weight in ẑⁿ, (c, K)."""
    return (model.mixing_weights(gathered),)


def projection_readout(
    model: CAPModel, z_hat: torch.Tensor, gathered: ProjectedNeighbors
) -> tuple[torch.Tensor, torch.Tensor]:
    """ẑ and ẑⁿ, (c, D) each."""
    return z_hat, model.normal_representation(gathered)


def score_summary(model: CAPModel, bank: torch.Tensor, monitor: Monitor) -> dict[str, float]:
    """Test-score means/stds of normal and anomalous items and the AUROC (Figures 3, 6)."""
    from cap.metrics.image import auroc  # scikit-learn: imported only when monitoring

    X, is_anomaly, index = monitor
    model.eval()
    (scores,) = read_out(model, bank, X, index, score_readout)
    normal, anomalous = scores[~is_anomaly], scores[is_anomaly]
    return {
        "score_normal_mean": float(normal.mean()),
        "score_normal_std": float(normal.std()),
        "score_anomaly_mean": float(anomalous.mean()),
        "score_anomaly_std": float(anomalous.std()),
        "auroc": auroc(is_anomaly, scores),
    }
