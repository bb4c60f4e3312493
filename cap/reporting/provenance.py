"""Where a report's numbers come from: commit, config, date, package versions, device,
backbone weights and runtimes."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import yaml

#: Distributions whose versions the report records, by display name (first installed wins).
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss"),
    "numpy": ("numpy",),
    "scikit-learn": ("scikit-learn",),
    "ai-edge-litert (TFLite)": ("ai-edge-litert",),
    "onnxruntime": ("onnxruntime",),
    "pyod": ("pyod",),
    "snakemake": ("snakemake",),
    "cap (capbench)": ("capbench",),
}


def provenance(
    config: Mapping[str, Any], repository: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """When, from which commit and with which config (sha256 of its YAML) the report was made."""
    config_yaml = yaml.safe_dump(dict(config), sort_keys=True, allow_unicode=True)
    return {
        "generated (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "commit": _commit(repository),
        "config sha256": hashlib.sha256(config_yaml.encode()).hexdigest(),
    }


def _commit(repository: str | os.PathLike[str] | None) -> str:
    """The checkout's commit, marked when tracked files were changed; "unknown" outside git."""
    if repository is None:
        return "unknown"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repository), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} (with uncommitted changes)" if changed else commit


def detect_environment() -> dict[str, str]:
    """Versions of the packages that shape the numbers, Python, platform and compute device."""
    info = {f"{name} version": _installed_version(dists) for name, dists in PACKAGES.items()}
    info["python"] = platform.python_version()
    info["platform"] = platform.platform()
    info["device"] = _device()
    return info


def backbone_weights(embedding_files: Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    """Which weights each backbone used (torchvision tag or checkpoint sha256) and, where it
    had a choice, which runtime ran it (torch or onnxruntime), from the attributes of the
    embedding files."""
    import h5py

    weights = {}
    for path in embedding_files:
        with h5py.File(path, "r") as store:
            weights[f"{store.attrs['backbone']} weights"] = str(store.attrs["weights"])
            if "runtime" in store.attrs:
                weights[f"{store.attrs['backbone']} runtime"] = str(store.attrs["runtime"])
    return weights


def _installed_version(distributions: Sequence[str]) -> str:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _device() -> str:
    try:
        import torch
    except ImportError:
        return "unknown (torch not installed)"
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
