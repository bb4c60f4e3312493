"""Atomic writes: all or nothing, and files as readable as any other new file."""

from __future__ import annotations

import os

import pytest

from cap.utils.io import atomic_path, write_text_atomic


def test_a_failed_write_leaves_the_destination_and_no_temporary(tmp_path):
    destination = tmp_path / "out.txt"
    write_text_atomic(destination, "before")
    with pytest.raises(RuntimeError), atomic_path(destination) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert destination.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_written_file_gets_the_mode_of_a_new_file(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "shared.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
