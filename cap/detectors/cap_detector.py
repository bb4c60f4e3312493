"""CAP as a detector: training on cached features (Appendix B.1) and fast scoring.

Shapes: N = bank items, n = queries, B = batch, K = neighbours, D = feature dimension.

Scoring projects the bank once per call and gathers each query's projected
neighbours from it, O(N·D² + n·K²·D), instead of projecting every query's K
neighbours separately, O(n·K·D²). Training does the same per batch: the
batch's items and their neighbours are projected once per distinct bank row.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cap.detectors.base import BaseDetector, check_is_fitted
from cap.utils.errors import ConfigError, DataError, MissingResourceError
from cap.utils.io import atomic_path
from cap.detectors.cap_model import (
    CONSTRAINTS,
    HEADS,
    INITS,
    CAPModel,
    ProjectedNeighbors,
    cap_objective,
    cosine_distance,
)
from cap.detectors.search import chunk_slices, knn_search
from cap.utils.validation import (
    check_choice,
    check_features,
    check_neighbors,
    check_number,
    check_same_dim,
)

logger = logging.getLogger(__name__)

#: Tag of the files written by :meth:`CAPDetector.save`.
_FILE_FORMAT = "capbench.CAPDetector/1"

#: Maps a chunk's projected queries ẑ (c, D) and gathered neighbours (c, K, D) to outputs.
Readout = Callable[[CAPModel, torch.Tensor, ProjectedNeighbors], tuple[torch.Tensor, ...]]


class CAPDetector(BaseDetector, name="cap"):
    """Constrained Adaptive Projection (Gui et al., IJCAI 2022) on pretrained features.

    Defaults follow Appendix B.1 and the released code (CIFAR settings).

    Parameters
    ----------
    k : int
        Nearest normal neighbours per item (§3.1).
    lam : float
        Weight λ of the constraint Ω (eq. 7).
    epochs : int
        Passes over the bank.
    lr : float
        Adam learning rate.
    batch_size : int
        Bank items per optimisation step.
    lr_decay : float or None
        ExponentialLR factor γ per epoch (released code: 0.9); ``None`` keeps the
        rate constant (the paper's text: "without decay").
    head : {"linear", "linear_relu", "linear_relu_linear"}
        Projection head (Table 2).
    attention : bool
        Reformed self-attention (eq. 3-4) or a plain mean of the neighbours.
    constraint : {"mse", "sq_l2"}
        Distance term of Ω (eq. 6): released code's MSE or the paper's ‖z − ẑ‖².
    init : {"xavier", "identity"}
        Initialisation of the head.
    seed : int
        Seeds the initialisation and the batch order.
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    Attributes
    ----------
    model_ : CAPModel
        The fitted model, on the CPU.
    bank_ : float32 array of shape (N, D)
        The memory bank.
    n_features_in_ : int
        D.
    history_ : list of dict
        One record per epoch: ``epoch``, ``loss``, ``similarity``, ``constraint``,
        ``lr``; with ``monitor`` also ``score_normal_mean``, ``score_normal_std``,
        ``score_anomaly_mean``, ``score_anomaly_std`` and ``auroc`` (Figures 3, 6).
    """

    def __init__(
        self,
        *,
        k: int = 32,
        lam: float = 2.0,
        epochs: int = 10,
        lr: float = 5e-4,
        batch_size: int = 64,
        lr_decay: float | None = 0.9,
        head: str = "linear",
        attention: bool = True,
        constraint: str = "mse",
        init: str = "xavier",
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.k = k
        self.lam = lam
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.lr_decay = lr_decay
        self.head = head
        self.attention = attention
        self.constraint = constraint
        self.init = init
        self.seed = seed
        self.device = device

    # ----------------------------------------------------------------- fitting

    def fit(
        self,
        bank: np.ndarray,
        *,
        neighbors: np.ndarray | None = None,
        monitor: tuple[np.ndarray, ...] | None = None,
    ) -> CAPDetector:
        """Train the projection head and attention on the bank (N, D) of normal features.

        Parameters
        ----------
        bank : array of shape (N, D)
            Pretrained features of the normal training images.
        neighbors : int array of shape (N, >=k), optional
            Each item's nearest *other* bank items by decreasing cosine similarity;
            the first k columns are used. Searched once when omitted.
        monitor : tuple, optional
            ``(X_test, y_test)`` or ``(X_test, y_test, test_neighbors)``, y = 1 for
            anomalies: the test set is scored after every epoch into ``history_``.

        Returns
        -------
        self
        """
        self._check_params()
        device = _resolve_device(self.device)
        bank = self._check_bank(bank, exclude_self=True)
        if neighbors is None:
            train_index = knn_search(bank, k=self.k)[1]
        else:
            train_index = check_neighbors(neighbors, len(bank), len(bank), self.k)
            self_rows = np.flatnonzero((train_index == np.arange(len(bank))[:, None]).any(axis=1))
            if len(self_rows):
                raise DataError(
                    f"training neighbors must exclude each item itself; row {self_rows[0]} "
                    f"lists itself ({len(self_rows)} such rows)"
                )
        watch = None if monitor is None else self._check_monitor(monitor, bank)

        torch.manual_seed(self.seed)
        model = CAPModel(bank.shape[1], self.head, self.attention, self.init).to(device)
        bank_tensor = torch.from_numpy(bank).to(device)
        history = self._train(model, bank_tensor, torch.from_numpy(train_index).to(device), watch)

        self.model_ = model.cpu().eval()
        self.bank_ = bank
        self.n_features_in_ = bank.shape[1]
        self.history_ = history
        return self

    def _check_params(self) -> None:
        check_number(self.k, "k", integer=True, minimum=1)
        check_number(self.lam, "lam", minimum=0)
        check_number(self.epochs, "epochs", integer=True, minimum=1)
        check_number(self.lr, "lr", minimum=0, exclusive_minimum=True)
        check_number(self.batch_size, "batch_size", integer=True, minimum=1)
        if self.lr_decay is not None:
            check_number(self.lr_decay, "lr_decay", minimum=0, maximum=1, exclusive_minimum=True)
        check_choice(self.head, "head", HEADS)
        check_choice(self.constraint, "constraint", CONSTRAINTS)
        check_choice(self.init, "init", INITS)
        if not isinstance(self.attention, bool):
            raise ConfigError(f"attention must be True or False; got {self.attention!r}")
        check_number(self.seed, "seed", integer=True, minimum=0)

    def _check_monitor(
        self, monitor: tuple[np.ndarray, ...], bank: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validated test features (n, D), anomaly flags (n,) and test neighbours (n, K)."""
        if not isinstance(monitor, (tuple, list)) or len(monitor) not in (2, 3):
            raise ConfigError(
                "monitor must be (X_test, y_test) or (X_test, y_test, test_neighbors)"
            )
        X = check_features(monitor[0], "monitor X_test")
        check_same_dim(X, bank.shape[1], "monitor X_test")
        y = np.asarray(monitor[1])
        if y.shape != (len(X),) or not np.isin(y, (0, 1)).all():
            raise DataError(
                f"monitor y_test must hold {len(X)} labels in {{0, 1}} (1 = anomaly); "
                f"got shape {y.shape}"
            )
        if len(np.unique(y)) != 2:
            raise DataError("monitor y_test needs both normal (0) and anomalous (1) items")
        test_neighbors = monitor[2] if len(monitor) == 3 else None
        return X, y.astype(bool), self._test_neighbors(X, test_neighbors, bank)

    def _train(
        self,
        model: CAPModel,
        bank: torch.Tensor,
        train_index: torch.Tensor,
        watch: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> list[dict[str, float]]:
        """Adam with per-epoch ExponentialLR (Appendix B.1; released code); returns the history."""
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr, fused=True)
        scheduler = (
            None
            if self.lr_decay is None
            else torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.lr_decay)
        )
        generator = torch.Generator().manual_seed(self.seed)
        history: list[dict[str, float]] = []
        for epoch in tqdm(range(1, self.epochs + 1), desc="CAP epochs", leave=False, disable=None):
            lr = optimizer.param_groups[0]["lr"]
            order = torch.randperm(len(bank), generator=generator).to(bank.device)  # (N,)
            terms = self._train_epoch(
                model, optimizer, bank, train_index, order.split(self.batch_size)
            )
            record: dict[str, float] = {
                "epoch": epoch,
                "loss": terms["total"],
                "similarity": terms["similarity"],
                "constraint": terms["constraint"],
                "lr": lr,
            }
            if watch is not None:
                record.update(_score_summary(model, bank, watch))
            summary = ", ".join(
                f"{key} {value:.5g}" for key, value in record.items() if key != "epoch"
            )
            logger.info("epoch %d/%d: %s", epoch, self.epochs, summary)
            history.append(record)
            if scheduler is not None:
                scheduler.step()
        return history

    def _train_epoch(
        self,
        model: CAPModel,
        optimizer: torch.optim.Optimizer,
        bank: torch.Tensor,
        train_index: torch.Tensor,
        batches: tuple[torch.Tensor, ...],
    ) -> dict[str, float]:
        """One pass over the shuffled bank; returns the loss terms averaged over batches."""
        model.train()
        sums = {"total": 0.0, "similarity": 0.0, "constraint": 0.0}
        for batch in tqdm(batches, desc="batches", leave=False, disable=None):
            optimizer.zero_grad()
            loss, terms = _batch_objective(
                model, bank, train_index, batch, self.lam, self.constraint
            )
            loss.backward()
            optimizer.step()
            for key in sums:
                sums[key] += terms[key]
        return {key: total / len(batches) for key, total in sums.items()}

    # ----------------------------------------------------------------- scoring

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        """s = 1 − cos(ẑ, ẑⁿ) (eq. 8) per query, shape (n,)."""
        (scores,) = self._read_out(X, neighbors, _score_readout)
        return scores

    def neighbor_weights(self, X: np.ndarray, *, neighbors: np.ndarray | None = None) -> np.ndarray:
        """Weight (n, K) of each of a query's K neighbours in ẑⁿ (Figures 2, 7); rows sum to 1.

        ``neighbors`` (n, >=k): optional precomputed test neighbours, as in
        :meth:`anomaly_score`; row j of the result follows their order.
        """
        check_is_fitted(self)
        (weights,) = self._read_out(self._check_queries(X), neighbors, _weights_readout)
        return weights

    def project(
        self, X: np.ndarray, *, neighbors: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Adaptive features ẑ (n, D) and adaptive normal representations ẑⁿ (n, D) (eq. 2, 4)."""
        check_is_fitted(self)
        z_hat, z_hat_n = self._read_out(self._check_queries(X), neighbors, _projection_readout)
        return z_hat, z_hat_n

    def _read_out(
        self, X: np.ndarray, neighbors: np.ndarray | None, readout: Readout
    ) -> tuple[np.ndarray, ...]:
        index = self._test_neighbors(X, neighbors)  # (n, K)
        device = _resolve_device(self.device)
        model = self.model_ if device.type == "cpu" else copy.deepcopy(self.model_).to(device)
        bank = torch.from_numpy(self.bank_).to(device)
        return _read_out_in_chunks(model, bank, X, index, readout)

    # ------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str], *, include_bank: bool = True) -> None:
        """Write settings, weights, history and (optionally) the bank to ``path``, atomically."""
        check_is_fitted(self)
        state = {
            "format": _FILE_FORMAT,
            "params": self.get_params(),
            "dim": self.n_features_in_,
            "state_dict": self.model_.state_dict(),
            "history": self.history_,
            "bank": torch.from_numpy(self.bank_) if include_bank else None,
        }
        with atomic_path(path) as temporary:
            torch.save(state, temporary)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, bank: np.ndarray | None = None) -> CAPDetector:
        """A fitted detector from a file of :meth:`save`.

        ``bank`` (N, D) is required when the file was saved with
        ``include_bank=False``, and replaces the saved bank otherwise.
        """
        path = Path(path)
        if not path.is_file():
            raise MissingResourceError(f"no saved CAPDetector at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a foreign file
            raise DataError(f"{path} is not a saved CAPDetector: {error}") from error
        if not isinstance(state, dict) or state.get("format") != _FILE_FORMAT:
            raise DataError(f"{path} is not a saved CAPDetector (format {_FILE_FORMAT})")
        detector = cls(**state["params"])
        if bank is None:
            if state["bank"] is None:
                raise DataError(
                    f"{path} was saved without its bank (include_bank=False): "
                    "pass the training features as load(path, bank=...)"
                )
            bank = state["bank"].numpy()
        bank = detector._check_bank(bank, exclude_self=False)
        if bank.shape[1] != state["dim"]:
            raise DataError(
                f"bank has {bank.shape[1]} features per row but the model in {path} "
                f"was trained on {state['dim']}"
            )
        model = CAPModel(state["dim"], detector.head, detector.attention, detector.init)
        model.load_state_dict(state["state_dict"])
        detector.model_ = model.eval()
        detector.bank_ = bank
        detector.n_features_in_ = state["dim"]
        detector.history_ = state["history"]
        return detector


def _resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; otherwise the named, available device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use auto or cpu")
    return device


def _batch_objective(
    model: CAPModel,
    bank: torch.Tensor,
    train_index: torch.Tensor,
    batch: torch.Tensor,
    lam: float,
    constraint: str,
) -> tuple[torch.Tensor, dict[str, float]]:
    """CAP loss (eq. 7) of a batch (B,) of bank rows with neighbours ``train_index`` (N, K).

    Each distinct bank row among the items and their neighbours is projected once;
    the result equals ``cap_loss(model, bank[batch], bank[train_index[batch]], ...)``.
    """
    members = torch.cat([batch[:, None], train_index[batch]], dim=1)  # (B, 1+K)
    rows, position = torch.unique(members, return_inverse=True)  # (U,), (B, 1+K)
    projected = model.project_neighbors(bank[rows])  # (U, D) each
    z_hat = projected.values[position[:, 0]]  # (B, D)
    z_hat_n = model.normal_representation(projected.take(position[:, 1:]))  # (B, D)
    return cap_objective(bank[batch], z_hat, z_hat_n, lam, constraint)


@torch.no_grad()
def _read_out_in_chunks(
    model: CAPModel, bank: torch.Tensor, X: np.ndarray, index: np.ndarray, readout: Readout
) -> tuple[np.ndarray, ...]:
    """Project the bank (N, D) once, then apply ``readout`` to chunks of queries (n, D).

    Chunks keep the gathered (c, K, D) neighbour tensors within a fixed budget.
    """
    device = bank.device
    memory = model.project_neighbors(bank)  # (N, D) each
    parts = []
    for rows in chunk_slices(len(X), index.shape[1] * X.shape[1]):
        z_hat = model.head(torch.from_numpy(X[rows]).to(device))  # (c, D)
        neighbours = memory.take(torch.from_numpy(index[rows]).to(device))  # (c, K, D)
        parts.append([out.cpu().numpy() for out in readout(model, z_hat, neighbours)])
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _score_readout(
    model: CAPModel, z_hat: torch.Tensor, neighbours: ProjectedNeighbors
) -> tuple[torch.Tensor]:
    return (cosine_distance(z_hat, model.normal_representation(neighbours)),)


def _weights_readout(
    model: CAPModel, z_hat: torch.Tensor, neighbours: ProjectedNeighbors
) -> tuple[torch.Tensor]:
    return (model.mixing_weights(neighbours),)


def _projection_readout(
    model: CAPModel, z_hat: torch.Tensor, neighbours: ProjectedNeighbors
) -> tuple[torch.Tensor, torch.Tensor]:
    return z_hat, model.normal_representation(neighbours)


def _score_summary(
    model: CAPModel, bank: torch.Tensor, watch: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> dict[str, float]:
    """Test-score means/stds of normal and anomalous items and the AUROC (Figures 3, 6)."""
    from cap.benchmark.evaluation import auroc  # scikit-learn: imported only when monitoring

    X, is_anomaly, index = watch
    model.eval()
    (scores,) = _read_out_in_chunks(model, bank, X, index, _score_readout)
    normal, anomalous = scores[~is_anomaly], scores[is_anomaly]
    return {
        "score_normal_mean": float(normal.mean()),
        "score_normal_std": float(normal.std()),
        "score_anomaly_mean": float(anomalous.mean()),
        "score_anomaly_std": float(anomalous.std()),
        "auroc": auroc(is_anomaly, scores),
    }
