"""A workflow job's log: where a script rule's job writes what it did, and why it stopped.

Snakemake shows a job's log when it fails; a script that dies on a traceback leaves its
log empty and names no file. :func:`log_to` makes an error of the user's input (a
:class:`~cap.utils.errors.CapError`) end the job with its one-line message, in the log
and on stderr, and keeps a bug's traceback in the log too.
"""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType

from cap.utils.errors import CapError

log = logging.getLogger("cap")


def log_to(path: str | os.PathLike[str]) -> None:
    """Log this process to ``path``, and end it on an uncaught error as described above."""
    logging.basicConfig(filename=path, level=logging.INFO)
    sys.excepthook = _report


def _report(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    if isinstance(error, CapError):
        log.error("error: %s", error)
        print(f"error: {error}", file=sys.stderr)
        return
    log.error("unexpected error", exc_info=(kind, error, trace))
    sys.__excepthook__(kind, error, trace)


def log_startup() -> float:
    """Log and return the seconds from the process's creation until now: a job calls it
    once its imports are done and its inputs read, so that the measurements of the
    workflow can tell start-up from work."""
    import time

    import psutil

    seconds = time.time() - psutil.Process().create_time()
    log.info("start-up %.2f s (imports and inputs)", seconds)
    return seconds
