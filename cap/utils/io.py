"""Atomic file output: a killed run never leaves a file that looks complete; and sealed
JSON: a file that holds the sha256 of its own content, so that one changed afterwards
(by hand, or by a tool that rewrote it) is told from one the workflow wrote.

Every writer in ``cap`` goes through :func:`atomic_path`: it hands out a temporary
path in the destination folder and renames it over the destination only when the
``with`` block finishes without an exception.
"""

from __future__ import annotations

import hashlib
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


#: The field of a sealed JSON file holding the sha256 of the rest.
DIGEST_FIELD = "sha256"


def json_digest(data: Any) -> str:
    """sha256 of JSON-like ``data``, independent of key order."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def seal(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the sha256 of its content (as JSON reads it back) under
    :data:`DIGEST_FIELD`."""
    data = json.loads(json.dumps(data))
    return {**data, DIGEST_FIELD: json_digest(data)}


def unseal(payload: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A sealed payload's content, and what shows it was not written as it is (no
    sha256, or one its content does not match), else None."""
    data = {key: value for key, value in payload.items() if key != DIGEST_FIELD}
    if DIGEST_FIELD not in payload:
        return data, f"has no {DIGEST_FIELD}, so it was not written by the workflow as it is"
    if payload[DIGEST_FIELD] != json_digest(data):
        return data, f"was changed after it was written (its {DIGEST_FIELD} no longer matches)"
    return data, None
