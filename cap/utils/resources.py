"""Fill the workflow's ``resources/`` folder: link a local copy, else download.

Every external input (a dataset folder, a zip, a weight file) has a destination
under ``resources/``. A local copy found at one of the configured candidate paths
is symlinked there (nothing is copied); otherwise the resource is downloaded from
its public source, unless offline mode forbids it, in which case the error names
the destination, the candidates tried and how to obtain the resource.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cap.utils.errors import ConfigError, MissingResourceError
from cap.utils.io import atomic_path
from cap.utils.offline import is_offline

log = logging.getLogger(__name__)

#: How a missing resource is obtained: a torchvision dataset, a plain URL, or by hand.
KINDS: tuple[str, ...] = ("torchvision", "url", "manual")
#: torchvision dataset classes by cap dataset name.
TORCHVISION_DATASETS: dict[str, str] = {
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "fmnist": "FashionMNIST",
}


def expand(path: str | os.PathLike[str]) -> Path:
    """``~`` and ``$VARS`` expanded, as in the config's local paths."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))


@dataclass(frozen=True)
class PackageFile:
    """A file that an installed Python distribution ships, as its file list names it."""

    distribution: str  # the distribution's name, as pip installs it
    path: str  # the file, relative to where the distribution is installed


#: A distribution's name (PEP 508): letters, digits, ``.``, ``_``, ``-``.
DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def package_file(package: PackageFile) -> Path | None:
    """Where ``package``'s file is installed, found through the distribution's file list
    (``importlib.metadata``, which imports nothing: a name from a config never runs code),
    or None where the distribution is not installed or does not list the file."""
    try:
        distribution = importlib.metadata.distribution(package.distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    wanted = PurePosixPath(package.path)
    listed = next((file for file in distribution.files or () if file == wanted), None)
    return None if listed is None else Path(distribution.locate_file(listed))


def check_package_file(package: PackageFile, where: str, instructions: str | None = None) -> None:
    """Refuse a ``package`` whose name is not an installed distribution or whose path
    leaves it (absolute, ``..``) or is not in its file list, naming the key ``where``."""
    if not DISTRIBUTION_NAME.fullmatch(package.distribution):
        raise ConfigError(
            f"{where}.distribution: {package.distribution!r} is not a distribution name "
            "(letters, digits, '.', '_' and '-', as pip installs it)"
        )
    path = PurePosixPath(package.path)
    if not package.path or path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            f"{where}.path: {package.path!r} must be a relative path inside the distribution, "
            "without '..'"
        )
    try:
        importlib.metadata.distribution(package.distribution)
    except importlib.metadata.PackageNotFoundError:
        how = f": {instructions}" if instructions else f" (pip install {package.distribution})"
        raise ConfigError(
            f"{where}.distribution: {package.distribution!r} is not an installed distribution{how}"
        ) from None
    if package_file(package) is None:
        raise ConfigError(
            f"{where}.path: distribution {package.distribution!r} ships no file "
            f"{package.path!r} (its files: importlib.metadata.files({package.distribution!r}))"
        )


def first_existing(
    candidates: Sequence[str | os.PathLike[str]], package: PackageFile | None = None
) -> Path | None:
    """The first of ``candidates`` (``~`` and ``$VARS`` expanded) that exists, else the
    ``package`` file where that package is installed, or None."""
    found = next((path for path in map(expand, candidates) if path.exists()), None)
    if found is None and package is not None:
        found = package_file(package)
        found = found if found is not None and found.exists() else None
    return found


def tree_version(path: str | os.PathLike[str]) -> str:
    """sha256 of what a file or folder holds, as the file system tells it cheaply: every
    file's path (relative to ``path``), size and modification time. A file added, removed,
    replaced or touched changes it; nothing is read, so a folder of 60,000 images takes
    a fraction of a second."""
    root = Path(path).resolve()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(
            f"{file.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()


def link(target: Path, destination: Path) -> None:
    """Point ``destination`` at ``target`` (file or folder) by a symlink, replaced atomically."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.parent / f".{destination.name}.{os.getpid()}.link"
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary, target_is_directory=target.is_dir())
    os.replace(temporary, destination)


def download_url(url: str, destination: Path) -> None:
    """Stream ``url`` to ``destination`` through a temporary file, with a progress bar."""
    from tqdm.auto import tqdm

    with atomic_path(destination) as temporary, urllib.request.urlopen(url) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with (
            temporary.open("wb") as handle,
            tqdm(total=total, unit="B", unit_scale=True, desc=destination.name) as bar,
        ):
            for block in iter(lambda: response.read(1 << 20), b""):
                handle.write(block)
                bar.update(len(block))


def download_torchvision(name: str, destination: Path) -> None:
    """Let torchvision download dataset ``name`` into a fresh folder renamed to ``destination``."""
    import torchvision.datasets

    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        loader = getattr(torchvision.datasets, TORCHVISION_DATASETS[name])
        for train in (True, False):
            loader(root=str(temporary), train=train, download=True)
        if destination.is_symlink():
            destination.unlink()
        os.replace(temporary, destination)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def how_to_obtain(
    kind: str, name: str, destination: Path, url: str | None, instructions: str | None
) -> str:
    """One sentence telling the user how to get the resource."""
    if instructions:
        return instructions
    if kind == "torchvision":
        return (
            f"on a machine with network access, let the workflow's fetch rule download it "
            f"(`snakemake {destination.parent}`) or call `load_dataset({name!r}, "
            f"{str(destination)!r}, 'train', download=True)`; or put a copy at one of the "
            f"local paths"
        )
    if kind == "url":
        return f"download {url} to {destination}, or put a copy at one of the local paths"
    return f"put a copy at {destination} or at one of the local paths"


def fetch_resource(
    kind: str,
    name: str,
    destination: str | os.PathLike[str],
    *,
    local_candidates: Sequence[str | os.PathLike[str]] = (),
    package: PackageFile | None = None,
    url: str | None = None,
    offline: bool | None = None,
    instructions: str | None = None,
) -> Path:
    """Make ``destination`` hold the resource, and return it.

    In order: a ``destination`` that already holds a real file or a non-empty folder is kept;
    else the first existing local candidate is symlinked to it; else, unless
    offline, the resource is downloaded (``kind="torchvision"``: torchvision
    dataset ``name`` into the ``destination`` folder; ``kind="url"``: ``url`` to
    the ``destination`` file).

    Parameters
    ----------
    kind : {"torchvision", "url", "manual"}
        How to obtain the resource when no local copy exists.
    name : str
        torchvision dataset name (``cifar10``, ``cifar100``, ``fmnist``), else a label.
    destination : path
    local_candidates : sequence of paths
        Where a local copy may be (``~`` and ``$VARS`` expanded).
    package : PackageFile, optional
        A file an installed Python distribution ships (:func:`package_file`), tried after
        the local candidates.
    url : str, optional
        Source of a ``kind="url"`` resource.
    offline : bool, optional
        The config's offline flag (see :func:`cap.utils.offline.is_offline`).
    instructions : str, optional
        How to obtain the resource, for the error message (e.g. a licence note).
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown resource kind {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "torchvision" and name not in TORCHVISION_DATASETS:
        raise ConfigError(
            f"unknown torchvision dataset {name!r}; valid: {', '.join(TORCHVISION_DATASETS)}"
        )
    if kind == "url" and not url:
        raise ConfigError(f"resource {name!r} of kind 'url' needs a url")
    destination = Path(destination)
    empty_folder = destination.is_dir() and not any(destination.iterdir())
    if destination.exists() and not destination.is_symlink() and not empty_folder:
        log.info("%s is already present", destination)
        return destination
    local = first_existing(local_candidates, package)
    if local is not None:
        link(local.resolve(), destination)
        log.info("linked %s -> %s", destination, local.resolve())
        return destination
    places = [str(expand(candidate)) for candidate in local_candidates]
    if package is not None:
        places.append(f"{package.path} of the installed distribution {package.distribution}")
    tried = ", ".join(places) or "none configured"
    how = how_to_obtain(kind, name, destination, url, instructions)
    if kind == "manual" or is_offline(offline):
        reason = (
            "offline mode is on" if kind != "manual" else "it cannot be downloaded automatically"
        )
        raise MissingResourceError(
            f"{name}: no local copy found and {reason}; expected {destination} "
            f"(local paths tried: {tried}). To obtain it: {how}"
        )
    log.info("downloading %s to %s", url or f"torchvision {name}", destination)
    try:
        if kind == "torchvision":
            download_torchvision(name, destination)
        else:
            download_url(url, destination)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        raise MissingResourceError(
            f"{name}: download to {destination} failed ({error}). {how}"
        ) from error
    return destination
