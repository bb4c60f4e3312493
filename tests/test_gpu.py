"""The CUDA paths, and the CPU side of them (device and precision handling).

Tests marked ``gpu`` run every torch path on CUDA and skip with the reason "CUDA not
available" elsewhere; ``pytest -m gpu`` selects them. The unmarked tests run everywhere.

Tolerances, measured on a CPU (these tests' problem: N = 600, D = 64, K = 16, 5 epochs,
AUROC about 0.7, so that rankings are not trivially perfect):

- float32 on CPU against float32 on CUDA (TF32 off): the two differ only in the order
  of float32 reductions, i.e. by about one ulp per operation. Perturbing the bank by one
  ulp (relative 6e-8) moves the trained scores by at most 3e-7 (relative 3e-6) and the
  AUROC by 0. We allow |Δscore| ≤ 1e-5 + 1e-4·|score| (about 30× that) and |ΔAUROC| ≤ 1e-3
  (a tenth of an AUROC point, ten times below the report's 1-point tolerance).
- "bf16" or "high" (TF32) training against "highest": bfloat16 keeps 8 bits of mantissa,
  TF32 11. bf16 moved the scores by at most 1.3e-3 relative and the AUROC by at most 1e-4
  on three seeds; we allow |Δscore| ≤ 1e-3 + 1e-2·|score| and the same |ΔAUROC| ≤ 1e-3.
- Embeddings (random-init ResNet-152): bf16 against float32 differed by 0.5 % in relative
  L2 norm per row (cosine 0.99999) on a CPU; we allow 3 %. CUDA float32 (cuDNN convolutions
  in TF32, torch's default) against CPU float32: 1 %.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from cap import CAPDetector
from cap.backbones import build_backbone
from cap.detectors.cap_model import CAPModel, cap_loss
from cap.detectors.cap_training import float32_matmul_precision
from cap.detectors.search import _exact_index, knn_search, l2_normalize
from cap.metrics.image import auroc
from cap.utils.errors import ConfigError
from cap.utils.torch_io import resolve_device

CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA, reason="CUDA not available")

#: float32 CPU vs float32 CUDA (see the module docstring).
FP32_RTOL, FP32_ATOL = 1e-4, 1e-5
#: reduced-precision training vs "highest".
LOW_RTOL, LOW_ATOL = 1e-2, 1e-3
#: |ΔAUROC| allowed for both.
AUROC_TOL = 1e-3
#: Small CAP runs for these tests.
FAST = {"k": 16, "epochs": 5}


def hard_features(
    n_bank: int = 600, n_test: int = 400, dim: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bank (N, D), test items (n, D), labels (n,): anomalies are normal items with extra
    noise, so that the AUROC is about 0.7 and rankings are sensitive to score changes."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(8, dim))

    def sample(n: int, spread: float = 0.0) -> np.ndarray:
        x = centres[rng.integers(len(centres), size=n)] + rng.normal(size=(n, dim))
        return np.abs(x + spread * rng.normal(size=(n, dim))).astype(np.float32)

    test = np.concatenate([sample(n_test // 2), sample(n_test - n_test // 2, 0.6)])
    labels = np.r_[np.zeros(n_test // 2, int), np.ones(n_test - n_test // 2, int)]
    return sample(n_bank), test, labels


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return hard_features()


def assert_scores_close(
    reference: np.ndarray, scores: np.ndarray, labels: np.ndarray, rtol: float, atol: float
) -> None:
    np.testing.assert_allclose(scores, reference, rtol=rtol, atol=atol)
    assert abs(auroc(labels, scores) - auroc(labels, reference)) <= AUROC_TOL


# --------------------------------------------------------------------------- CPU side


def test_default_precision_is_exact_float32_on_a_cpu(features) -> None:
    """The default, "highest" and "high" (a no-op on a CPU) train bit-identically."""
    bank, test, _ = features
    scores = [
        CAPDetector(**FAST, device="cpu", **extra).fit(bank).anomaly_score(test)
        for extra in ({}, {"matmul_precision": "highest"}, {"matmul_precision": "high"})
    ]
    assert CAPDetector().get_params()["matmul_precision"] == "highest"
    assert np.array_equal(scores[0], scores[1]) and np.array_equal(scores[0], scores[2])


def test_training_follows_the_model_equations() -> None:
    """The batched training step (distinct rows projected once, one transfer per epoch)
    trains what a plain loop over eq. 7 (``cap_loss`` on gathered neighbours) trains."""
    bank, _, _ = hard_features(n_bank=200, dim=32)
    settings = {"k": 8, "epochs": 3, "batch_size": 48, "lr": 5e-4, "lam": 2.0, "seed": 3}
    detector = CAPDetector(**settings, device="cpu").fit(bank)

    index = knn_search(bank, k=8)[1]
    torch.manual_seed(3)
    model = CAPModel(bank.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    generator = torch.Generator().manual_seed(3)
    features = torch.from_numpy(bank)
    losses = []
    for _ in range(3):
        order = torch.randperm(len(bank), generator=generator).numpy()
        total = 0.0
        for start in range(0, len(order), 48):
            items = order[start : start + 48]
            optimizer.zero_grad()
            loss, _ = cap_loss(model, features[items], features[index[items]], 2.0)
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / -(-len(order) // 48))
        scheduler.step()
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(detector.model_.state_dict()[name], weight, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([r["loss"] for r in detector.history_], losses, rtol=1e-5)


def test_bf16_training_on_a_cpu_stays_within_the_tolerance(features) -> None:
    bank, test, labels = features
    reference = CAPDetector(**FAST, device="cpu").fit(bank).anomaly_score(test)
    detector = CAPDetector(**FAST, device="cpu", matmul_precision="bf16").fit(bank)
    assert_scores_close(reference, detector.anomaly_score(test), labels, LOW_RTOL, LOW_ATOL)
    assert all(np.isfinite(record["loss"]) for record in detector.history_)


def test_an_unknown_matmul_precision_is_refused() -> None:
    with pytest.raises(ConfigError, match="matmul_precision must be a str among .*got 'medium'"):
        CAPDetector(matmul_precision="medium", device="cpu").fit(np.ones((40, 4), np.float32))


def test_the_matmul_precision_is_set_on_cuda_only_and_restored() -> None:
    before = torch.get_float32_matmul_precision()
    with float32_matmul_precision("high", torch.device("cpu")):
        assert torch.get_float32_matmul_precision() == before  # the CPU is left alone
    for precision, inside in (("high", "high"), ("highest", "highest"), ("bf16", "highest")):
        with float32_matmul_precision(precision, torch.device("cuda")):  # sets flags only
            assert torch.get_float32_matmul_precision() == inside
        assert torch.get_float32_matmul_precision() == before


def test_a_model_saved_with_a_missing_cuda_device_loads_and_scores_here(tmp_path, features) -> None:
    """A file from a GPU box names its device ("cuda:7"); where that device is missing,
    the loaded detector scores on "auto" instead of refusing to."""
    bank, test, labels = features
    detector = CAPDetector(k=8, epochs=1, device="cpu").fit(bank)
    reference = detector.anomaly_score(test)
    detector.set_params(device="cuda:7").save(tmp_path / "model.pt")

    loaded = CAPDetector.load(tmp_path / "model.pt")
    if not (CUDA and torch.cuda.device_count() > 7):
        assert loaded.device == "auto"
    assert_scores_close(reference, loaded.anomaly_score(test), labels, FP32_RTOL, FP32_ATOL)
    on_cpu = CAPDetector.load(tmp_path / "model.pt", device="cpu")
    assert on_cpu.device == "cpu" and np.array_equal(on_cpu.anomaly_score(test), reference)


# --------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
@requires_cuda
def test_cap_fit_and_score_on_cuda_match_the_cpu(features) -> None:
    """float32 on both (TF32 off: "highest"); same init and batch order by construction."""
    bank, test, labels = features
    on_cpu = CAPDetector(**FAST, device="cpu").fit(bank)
    on_cuda = CAPDetector(**FAST, device="cuda").fit(bank)
    scores = on_cuda.anomaly_score(test)  # scored on CUDA too
    assert_scores_close(on_cpu.anomaly_score(test), scores, labels, FP32_RTOL, FP32_ATOL)
    np.testing.assert_allclose(
        [r["loss"] for r in on_cuda.history_], [r["loss"] for r in on_cpu.history_], rtol=1e-4
    )
    assert next(on_cuda.model_.parameters()).device.type == "cpu"  # kept on the CPU after fit


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("precision", ["high", "bf16"])
def test_reduced_precision_training_on_cuda_stays_within_the_tolerance(
    features, precision: str
) -> None:
    bank, test, labels = features
    reference = CAPDetector(**FAST, device="cuda").fit(bank).anomaly_score(test)
    before = torch.get_float32_matmul_precision()
    detector = CAPDetector(**FAST, device="cuda", matmul_precision=precision).fit(bank)
    assert torch.get_float32_matmul_precision() == before  # restored after training
    assert_scores_close(reference, detector.anomaly_score(test), labels, LOW_RTOL, LOW_ATOL)


@pytest.mark.gpu
@requires_cuda
def test_cap_training_with_a_monitor_on_cuda() -> None:
    bank, test, labels = hard_features(n_bank=200, n_test=100, dim=32)
    detector = CAPDetector(k=8, epochs=2, device="cuda").fit(bank, monitor=(test, labels))
    assert [record["epoch"] for record in detector.history_] == [1, 2]
    assert all(0.0 <= record["auroc"] <= 1.0 for record in detector.history_)


def _relative_row_error(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    return np.linalg.norm(other - reference, axis=1) / np.linalg.norm(reference, axis=1)


@pytest.mark.gpu
@requires_cuda
def test_torchvision_embedding_on_cuda_in_fp32_and_bf16() -> None:
    """Random-init ResNet-152 (``weights="random"``: nothing is downloaded)."""
    torch.manual_seed(0)
    backbone = build_backbone("resnet152", weights="random", device="cuda")
    images = torch.randint(0, 256, (4, 224, 224, 3), dtype=torch.uint8)  # the transform's output
    fp32, maps = backbone.embed(images, return_maps=True)
    assert fp32.shape == (4, 2048) and fp32.dtype == np.float32 and np.isfinite(fp32).all()
    assert maps is not None and maps.shape == (4, 7, 7, 2048)
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), fp32, rtol=1e-5)

    backbone.bf16 = True
    bf16, _ = backbone.embed(images)
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    assert _relative_row_error(fp32, bf16).max() <= 0.03

    backbone.trunk = backbone.trunk.to("cpu", memory_format=torch.contiguous_format)
    backbone.device, backbone.bf16 = "cpu", False
    on_cpu, _ = backbone.embed(images)
    assert _relative_row_error(on_cpu, fp32).max() <= 0.01


def _faiss_gpu_skip_reason() -> str | None:
    if not CUDA:
        return "CUDA not available"
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        return "faiss has no GPU (a faiss-cpu build): install faiss-gpu for this test"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_faiss_gpu_skip_reason() is not None, reason=str(_faiss_gpu_skip_reason()))
def test_faiss_gpu_index_finds_the_cpu_neighbours() -> None:
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((2000, 64), dtype=np.float32)
    queries = rng.standard_normal((300, 64), dtype=np.float32)
    assert type(_exact_index(faiss.IndexFlatIP(64), 33)).__name__ != "IndexFlatIP"

    similarities, indices = knn_search(bank, queries, k=32)  # on the GPU
    cpu_index = faiss.IndexFlatIP(64)
    cpu_index.add(l2_normalize(bank))
    cpu_similarities, cpu_indices = cpu_index.search(l2_normalize(queries), 32)
    np.testing.assert_allclose(similarities, cpu_similarities, atol=1e-5)
    swapped = indices != cpu_indices  # only where two similarities tie within float32 noise
    exact = l2_normalize(queries) @ l2_normalize(bank).T  # (n, N)
    rows = np.nonzero(swapped)[0]
    np.testing.assert_allclose(
        exact[rows, indices[swapped]], exact[rows, cpu_indices[swapped]], atol=1e-5
    )
    assert swapped.mean() < 0.01

    _, self_indices = knn_search(bank, k=8)  # the self-excluding search, on the GPU
    assert not (self_indices == np.arange(len(bank))[:, None]).any()


@pytest.mark.gpu
@requires_cuda
def test_a_model_fitted_on_cuda_loads_and_scores_on_a_cpu(tmp_path, features, monkeypatch) -> None:
    bank, test, labels = features
    detector = CAPDetector(**FAST, device="cuda").fit(bank)
    on_cuda = detector.anomaly_score(test)
    detector.save(tmp_path / "model.pt")

    loaded = CAPDetector.load(tmp_path / "model.pt", device="cpu")
    assert resolve_device(loaded.device).type == "cpu"
    assert_scores_close(on_cuda, loaded.anomaly_score(test), labels, FP32_RTOL, FP32_ATOL)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    elsewhere = CAPDetector.load(tmp_path / "model.pt")
    assert elsewhere.device == "auto"
    np.testing.assert_array_equal(elsewhere.anomaly_score(test), loaded.anomaly_score(test))
