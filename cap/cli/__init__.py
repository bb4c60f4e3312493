"""The ``cap`` command line: one sub-command per `cap` step of the workflow
(:mod:`cap.workflow.steps`, each reading its job's spec file), and ``verify``.

The Snakemake rules call these sub-commands, so the workflow stays a thin layer over the
library; a job can be run again by hand from its spec file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cap.utils.errors import CapError
from cap.workflow.steps import STEPS, Step

#: Modules under ``cap.cli`` that each contribute a sub-command besides the steps.
COMMAND_MODULES: tuple[str, ...] = ("check", "verify")


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser: a sub-command per step, then :data:`COMMAND_MODULES`'."""
    parser = argparse.ArgumentParser(
        prog="cap", description="CAP anomaly-detection benchmark (capbench)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for step in STEPS:
        add_step_command(subparsers, step)
    for name in COMMAND_MODULES:
        importlib.import_module(f"cap.cli.{name}").register(subparsers)
    return parser


def add_step_command(subparsers: argparse._SubParsersAction, step: Step) -> None:
    """``cap <step> SPEC``: its one argument is its job's spec file, described in ``--help``."""
    from cap.evaluation.jobs import describe

    parser = subparsers.add_parser(
        step.name,
        help=step.summary,
        description=f"{step.summary}.\n\nSPEC is a JSON file (the workflow writes one per "
        f"job, under results/specs/{step.name}/) holding an object:\n\n{describe(step.spec)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", type=Path, help=f"the job's {step.spec.__name__} (JSON)")
    if step.options is not None:
        step.options(parser)
    parser.set_defaults(handler=lambda args: _run_step(step, args))


def _run_step(step: Step, args: argparse.Namespace) -> None:
    from cap.evaluation.jobs import read_spec

    step.run(read_spec(step.spec, args.spec), args)


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
