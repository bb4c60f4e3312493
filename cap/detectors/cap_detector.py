"""CAP as a detector: the scikit-learn-style shell around the model and its training.

Shapes: N = bank items, n = queries, K = neighbours, D = feature dimension.

Torch is imported by the methods that use it (through :mod:`cap.detectors.cap_training`),
so that the registry, and the workflow's planning with it, stays light.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from cap.detectors.base import KNNDetector, Monitor, TrainableDetector, check_is_fitted
from cap.detectors.cap_choices import CONSTRAINTS, HEADS, INITS, MATMUL_PRECISIONS
from cap.detectors.knn import cosine_gap_maps
from cap.detectors.settings import COUNT, SEED_PARAM, Param
from cap.utils.errors import ConfigError, DataError
from cap.utils.io import atomic_path
from cap.utils.torch_io import load_torch_file, resolve_device
from cap.utils.validation import check_features, check_neighbors, check_same_dim

if TYPE_CHECKING:
    from cap.detectors.cap_training import Readout

logger = logging.getLogger(__name__)

#: Tag of the files written by :meth:`CAPDetector.save`.
_FILE_FORMAT = "capbench.CAPDetector/1"


class CAPDetector(KNNDetector, TrainableDetector, name="cap"):
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
    matmul_precision : {"highest", "high", "bf16"}
        Precision of the training matmuls: ``"highest"`` is IEEE float32 (exact, the
        default); ``"high"`` allows TF32 on CUDA (no effect on a CPU); ``"bf16"`` runs
        the projections under bfloat16 autocast. Scores are always computed in float32.

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

    localizes: ClassVar[bool] = True
    declared_settings: ClassVar[Mapping[str, Param]] = {
        "k": Param("K, the number of nearest normal neighbours (§3.1)", COUNT),
        "lam": Param(
            "λ, weight of the constraint term Ω (eq. 7)", Interval(Real, 0, None, closed="left")
        ),
        "epochs": Param("training epochs (passes over the bank)", COUNT),
        "lr": Param("Adam learning rate", Interval(Real, 0, None, closed="neither")),
        "batch_size": Param("bank items per optimisation step", COUNT),
        "lr_decay": Param(
            "ExponentialLR γ per epoch (released code: 0.9); null: constant (the paper's text)",
            Interval(Real, 0, 1, closed="right"),
            None,
        ),
        "head": Param("projection head (Table 2)", StrOptions(set(HEADS))),
        "attention": Param(
            "reformed self-attention (eq. 3–4), or a plain mean of the neighbours", "boolean"
        ),
        "constraint": Param(
            "distance in Ω: mse (released code) or sq_l2 (paper, eq. 6)",
            StrOptions(set(CONSTRAINTS)),
        ),
        "init": Param("initialisation of the head", StrOptions(set(INITS))),
        "seed": SEED_PARAM,
        "device": Param(
            "where to train and score: auto (CUDA when available), cpu, cuda, cuda:N", str
        ),
        "matmul_precision": Param(
            "training matmuls: highest = IEEE float32 (exact); high = TF32 on CUDA (no effect "
            "on a CPU); bf16 = bfloat16 autocast of the projections; scores stay float32",
            StrOptions(set(MATMUL_PRECISIONS)),
        ),
    }
    failed_checks: ClassVar[Mapping[str, str]] = {
        "check_fit2d_1sample": (
            "training excludes each item from its own k >= 1 neighbours, so CAP needs "
            "k + 1 >= 2 items: the DataError says so without the check's words ('1 sample')"
        ),
    }

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
        matmul_precision: str = "highest",
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
        self.matmul_precision = matmul_precision

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"k": 2, "epochs": 1, "batch_size": 8, "device": "cpu"}

    # ----------------------------------------------------------------- fitting

    @property
    def chaotic(self) -> bool:
        """λ = 0 collapses (the paper's Proposition): every score shrinks towards 0 and the
        ranking follows floating-point noise."""
        return self.lam == 0

    def fit(
        self,
        X: np.ndarray,
        y: object = None,
        *,
        neighbors: np.ndarray | None = None,
        monitor: Monitor | None = None,
    ) -> CAPDetector:
        """Train the projection head and attention on the bank ``X`` (N, D) of normal features.

        Parameters
        ----------
        X : array of shape (N, D)
            The bank: pretrained features of the normal training images.
        y : object
            Ignored (scikit-learn's signature, so that a ``Pipeline`` can fit).
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
        import torch

        from cap.detectors import cap_training
        from cap.detectors.cap_model import CAPModel
        from cap.detectors.search import knn_search

        self._validate_params()
        device = resolve_device(self.device)
        bank = self._check_bank(X, exclude_self=True)
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
        monitor = None if monitor is None else self._check_monitor(monitor, bank)

        torch.manual_seed(self.seed)
        model = CAPModel(bank.shape[1], self.head, self.attention, self.init).to(device)
        settings = cap_training.TrainingSettings.from_params(self.get_params())
        bank_tensor = torch.from_numpy(bank).to(device)
        history = cap_training.train(model, bank_tensor, train_index, settings, monitor)

        self.model_ = model.cpu().eval()
        self.bank_ = bank
        self.n_features_in_ = bank.shape[1]
        self.history_ = history
        return self

    def _check_monitor(self, monitor: Monitor, bank: np.ndarray) -> Monitor:
        """The monitor completed and validated: test features (n, D), anomaly flags (n,)
        and test neighbours (n, K), searched when not given."""
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

    # ----------------------------------------------------------------- scoring

    def _anomaly_score(self, X: np.ndarray, neighbors: np.ndarray | None) -> np.ndarray:
        """s = 1 − cos(ẑ, ẑⁿ) (eq. 8) per query, shape (n,)."""
        from cap.detectors.cap_training import score_readout

        (scores,) = self._read_out(X, neighbors, score_readout)
        return scores

    def neighbor_weights(self, X: np.ndarray, *, neighbors: np.ndarray | None = None) -> np.ndarray:
        """Weight (n, K) of each of a query's K neighbours in ẑⁿ (Figures 2, 7); rows sum to 1.

        ``neighbors`` (n, >=k): optional precomputed test neighbours, as in
        :meth:`anomaly_score`; row j of the result follows their order.
        """
        from cap.detectors.cap_training import weights_readout

        check_is_fitted(self)
        (weights,) = self._read_out(self._check_queries(X), neighbors, weights_readout)
        return weights

    def project(
        self, X: np.ndarray, *, neighbors: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Adaptive features ẑ (n, D) and adaptive normal representations ẑⁿ (n, D) (eq. 2, 4)."""
        from cap.detectors.cap_training import projection_readout

        check_is_fitted(self)
        z_hat, z_hat_n = self._read_out(self._check_queries(X), neighbors, projection_readout)
        return z_hat, z_hat_n

    def anomaly_maps(
        self, X: np.ndarray, *, feature_maps: np.ndarray, neighbors: np.ndarray | None = None
    ) -> np.ndarray:
        """The paper's anomaly maps (§4.6, Figs. 4–5), (n, h, w): |cos(z, f) − cos(ẑⁿ, f)|
        over the last feature maps f (n, h, w, D) of queries ``X`` (n, D)."""
        _, z_hat_n = self.project(X, neighbors=neighbors)  # (n, D)
        return cosine_gap_maps(self._check_queries(X), z_hat_n, feature_maps)

    def _read_out(
        self, X: np.ndarray, neighbors: np.ndarray | None, readout: Readout
    ) -> tuple[np.ndarray, ...]:
        import copy

        import torch

        from cap.detectors.cap_training import read_out

        index = self._test_neighbors(X, neighbors)  # (n, K)
        device = resolve_device(self.device)
        model = self.model_ if device.type == "cpu" else copy.deepcopy(self.model_).to(device)
        bank = torch.from_numpy(self.bank_).to(device)
        return read_out(model, bank, X, index, readout)

    # ------------------------------------------------------------- persistence

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        include_bank: bool = True,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        """Write settings, weights, history, provenance and (optionally) the bank, atomically."""
        import torch

        check_is_fitted(self)
        state = {
            "format": _FILE_FORMAT,
            "params": self.get_params(),
            "dim": self.n_features_in_,
            "state_dict": self.model_.state_dict(),
            "history": self.history_,
            "provenance": provenance,
            "bank": torch.from_numpy(self.bank_) if include_bank else None,
        }
        with atomic_path(path) as temporary:
            torch.save(state, temporary)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        bank: np.ndarray | None = None,
        provenance: dict[str, Any] | None = None,
        device: str | None = None,
    ) -> CAPDetector:
        """A fitted detector from a file of :meth:`save`.

        ``bank`` (N, D) is required when the file was saved with
        ``include_bank=False``, and replaces the saved bank otherwise. When
        ``provenance`` is given, it must equal the saved one (the bank's embedding
        file and rows, say): a model is never paired with another bank by mistake.
        ``device`` sets where the loaded detector scores; by default the saved
        setting, unless it names a CUDA device this machine lacks (a model trained on
        a GPU box, read on a laptop): then ``"auto"``. Weights load on the CPU.
        """

        from cap.detectors.cap_model import CAPModel

        path = Path(path)
        state = load_torch_file(path, "saved CAPDetector", DataError)
        if not isinstance(state, dict) or state.get("format") != _FILE_FORMAT:
            raise DataError(f"{path} is not a saved CAPDetector (format {_FILE_FORMAT})")
        saved = state.get("provenance")
        if provenance is not None and saved != provenance:
            differing = sorted(
                key
                for key in {*provenance, *(saved or {})}
                if provenance.get(key) != (saved or {}).get(key)
            )
            raise DataError(
                f"{path} was trained on another bank: its provenance differs in "
                f"{', '.join(differing)} (saved {saved}, expected {provenance}); retrain it"
            )
        detector = cls(**state["params"])
        detector.device = _loadable_device(detector.device) if device is None else device
        detector._validate_params()
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


def _loadable_device(saved: str) -> str:
    """The saved ``device`` setting, or ``"auto"`` where it names a CUDA device missing here."""
    import torch

    if not str(saved).startswith("cuda"):
        return saved
    try:
        index = torch.device(saved).index or 0
    except (RuntimeError, TypeError):
        return saved  # an invalid name: left for resolve_device to explain
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        return saved
    logger.info("model saved with device %r, which this machine lacks: scoring on 'auto'", saved)
    return "auto"
