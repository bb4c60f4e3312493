"""Shared pytest fixtures."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from workflow_helpers import smoke_config, snakemake, write_config

# --- Synthetic features for the core library tests ---------------------------------
# (test_model, test_neighbors, test_detectors, test_collapse)


class Blobs(NamedTuple):
    """Normal training bank, test items and their labels (1 = anomaly)."""

    bank: np.ndarray  # (N, D) float32
    test: np.ndarray  # (M, D) float32
    is_anomaly: np.ndarray  # (M,) int


def _make_blobs(
    n_bank: int = 300, n_test: int = 100, dim: int = 16, *, n_clusters: int = 4, seed: int = 0
) -> Blobs:
    """Gaussian blobs: normal items around ``n_clusters`` centres, anomalies around two others.

    Centres are random directions (norm ~2√D), noise has unit variance, so normal
    test items are close in cosine to the bank and anomalies are not.
    """
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(n_clusters + 2, dim))
    normal_centres, anomalous_centres = centres[:n_clusters], centres[n_clusters:]

    def sample(centre_pool: np.ndarray, n: int) -> np.ndarray:
        picks = rng.integers(len(centre_pool), size=n)
        return (centre_pool[picks] + rng.normal(size=(n, dim))).astype(np.float32)

    n_anomalous = n_test // 2
    test = np.concatenate(
        [sample(normal_centres, n_test - n_anomalous), sample(anomalous_centres, n_anomalous)]
    )
    is_anomaly = np.r_[np.zeros(n_test - n_anomalous, int), np.ones(n_anomalous, int)]
    return Blobs(sample(normal_centres, n_bank), test, is_anomaly)


@pytest.fixture(scope="session")
def make_blobs() -> Callable[..., Blobs]:
    """Factory of synthetic :class:`Blobs` (sizes and seed as arguments)."""
    return _make_blobs


@pytest.fixture
def blobs() -> Blobs:
    """Small default blobs: 300 bank items, 100 test items, 16-d."""
    return _make_blobs()


@pytest.fixture(scope="module")
def single_thread_math() -> Iterator[None]:
    """Run torch and faiss on one thread for a module, then restore their settings.

    The tests' tiny matrices gain nothing from more threads, and on a busy 2-core
    machine OpenMP thread contention made them up to 10x slower.
    """
    import faiss
    import torch

    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(faiss_threads)


# --- end of the core library fixtures ------------------------------------------------


# --- A local run of the workflow ------------------------------------------------------
# (test_workflow, test_slurm: the cluster run must give the same AUROCs)


@pytest.fixture(scope="session")
def smoke_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One complete offline run of the smoke DAG: workdir, config file, snakemake's result."""
    workdir = tmp_path_factory.mktemp("smoke")
    config = write_config(workdir / "smoke.yaml", smoke_config())
    result = snakemake(workdir, "--cores", "2", "all", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir, config, result


@pytest.hookimpl(tryfirst=True)  # before -m selects by the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reads a full run of the workflow is marked ``workflow`` (run by
    ``.ci/run`` as a stage of its own, ``python -m pytest -m workflow``), the cluster runs
    too; the default run stays within minutes."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()) or item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.workflow)
