"""``cap verify``: a run's tables checked against a committed report's (runs, seed means of
chaotic runs, claims' verdicts; the rule is :mod:`cap.reporting.verification`'s)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cap.utils.errors import DataError

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> None:
    from cap.reporting.verification import read_tables, verify

    expected, expected_claims = read_tables(args.expected)
    actual, actual_claims = read_tables(args.actual)
    if expected_claims is not None and actual_claims is None and not args.subset:
        if not args.no_claims:
            raise DataError(
                f"{args.actual} has no claims.csv: the {len(expected_claims)} verdicts of "
                f"{args.expected} cannot be compared (--no-claims compares the runs alone)"
            )
        log.warning("claims not compared (--no-claims): %d verdicts", len(expected_claims))
        expected_claims = None
    result = verify(
        expected,
        actual,
        expected_claims=expected_claims,
        actual_claims=actual_claims,
        tolerance=args.tolerance,
        z=args.z,
        subset=args.subset,
    )
    if not result.ok:
        raise DataError(f"{args.actual} does not reproduce {args.expected}:\n{result.report()}")
    log.info("%s reproduces %s\n%s", args.actual, args.expected, result.summary)


def finite_non_negative(text: str) -> float:
    """An argument that must be a finite number ≥ 0 (a NaN tolerance would pass anything)."""
    from cap.reporting.verification import check_bound

    try:
        return check_bound(float(text), "argument")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number ≥ 0") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``verify`` to the ``cap`` parser."""
    from cap.reporting import verification

    parser = subparsers.add_parser(
        "verify",
        help="check a run against a committed report: runs, seed means and verdicts",
        description=verification.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "expected", type=Path, help="the committed report's tables/ folder, or its runs.csv"
    )
    parser.add_argument("actual", type=Path, help="the tables/ folder (or runs.csv) to check")
    parser.add_argument(
        "--tolerance", type=finite_non_negative, default=verification.RUN_TOLERANCE,
        help="largest |ΔAUROC| of a deterministic run (default: %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--z", type=finite_non_negative, default=verification.CHAOTIC_Z,
        help="standard deviations a chaotic group's seed mean may move (default: %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--no-claims", action="store_true",
        help="compare the runs even where ACTUAL has no claims.csv to compare verdicts with",
    )  # fmt: skip
    parser.add_argument(
        "--subset", action="store_true",
        help="ACTUAL holds a slice of EXPECTED's runs: compare those (claims are not compared)",
    )  # fmt: skip
    parser.set_defaults(handler=run)
