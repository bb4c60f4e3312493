"""Atomic file output: a killed run never leaves a file that looks complete.

Every writer in ``cap`` goes through :func:`atomic_path`: it hands out a temporary
path in the destination folder and renames it over the destination only when the
``with`` block finishes without an exception.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it there on success.

    The temporary file lives in the same folder so that the final ``os.replace``
    is atomic on POSIX file systems. On any exception it is removed and the
    destination is left untouched.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        if temporary_path.exists():  # mkstemp makes it private; give it the usual mode
            temporary_path.chmod(_new_file_mode())
        os.replace(temporary_path, destination)
    finally:
        temporary_path.unlink(missing_ok=True)


def _new_file_mode() -> int:
    """The mode ``open`` gives a new file: read-write for all, less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomic(destination: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``destination`` atomically."""
    with atomic_path(destination) as temporary:
        temporary.write_text(text)


def write_json_atomic(destination: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``destination`` atomically."""
    write_text_atomic(destination, json.dumps(payload, indent=2, sort_keys=True) + "\n")
