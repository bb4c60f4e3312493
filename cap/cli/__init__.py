"""The ``cap`` command line: one sub-command per `cap` step of the workflow, and ``verify``.

The steps are those of :data:`cap.workflow.layout.RULES` that read a spec; each lives in
its own module ``cap.cli.<step>``, which gives its ``SUMMARY`` line, its ``run(args)``
handler and, where it has options beside its spec file, ``add_arguments(parser)``. The
Snakemake rules call these sub-commands, so the workflow stays a thin layer over the
library.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cap.utils.errors import CapError
from cap.workflow.layout import RULE, SPEC_STEPS

if TYPE_CHECKING:
    from cap.evaluation.cache import RunCache

#: Modules under ``cap.cli`` that each contribute a sub-command: the `cap` steps, ``verify``.
COMMAND_MODULES: tuple[str, ...] = (*SPEC_STEPS, "verify")


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from every module in :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="cap", description="CAP anomaly-detection benchmark (capbench)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for step in SPEC_STEPS:
        module = importlib.import_module(f"cap.cli.{step}")
        command = add_spec_command(subparsers, step, RULE[step].spec, module.SUMMARY, module.run)
        getattr(module, "add_arguments", lambda parser: None)(command)
    importlib.import_module("cap.cli.verify").register(subparsers)
    return parser


def add_spec_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    kind: type,
    summary: str,
    handler: Callable[[argparse.Namespace], None],
) -> argparse.ArgumentParser:
    """A sub-command whose one argument is its job's spec file, described in ``--help``."""
    from cap.evaluation.jobs import describe

    parser = subparsers.add_parser(
        name,
        help=summary,
        description=f"{summary}.\n\nSPEC is a JSON file (the workflow writes one per job, "
        f"under results/specs/{name}/) holding an object:\n\n{describe(kind)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", type=Path, help=f"the job's {kind.__name__} (JSON)")
    parser.set_defaults(handler=handler)
    return parser


def open_cache(folder: str | None) -> RunCache | None:
    """The run cache of a job's spec (None: no cache)."""
    from cap.evaluation.cache import RunCache

    return None if folder is None else RunCache(folder)


def warm_up(specs: Sequence[Any]) -> None:
    """Where a method trains, import torch, and the compiler stack that its optimisers
    import at their first step (about a second), before the first fit: the start-up
    then includes them, and each run's fit seconds are its own."""
    from cap.detectors import detector_class

    if any(detector_class(spec.method).trainable for spec in specs):
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)]).step()


def log_startup() -> float:
    """Log and return the seconds from the process's creation until now: a job calls it
    once its imports are done and its inputs read, so that the benchmark of the
    workflow can tell start-up from work."""
    import time

    import psutil

    seconds = time.time() - psutil.Process().create_time()
    logging.getLogger("cap.cli").info("start-up %.2f s (imports and inputs)", seconds)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cap`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.handler(args)
    except CapError as error:
        print(f"cap {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
