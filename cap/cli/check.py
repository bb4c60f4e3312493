"""``cap check``: a config file checked as the workflow plans it, without Snakemake, so that
a config from elsewhere can be read before ``snakemake --configfile`` loads (and, for a
YTE template, evaluates) it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> None:
    from cap.reporting.paper import check_paper_results
    from cap.workflow import Plan
    from cap.workflow.schema import REPOSITORY, validated
    from cap.workflow.shared import read_config_file

    plan = Plan(validated(read_config_file(args.config)))
    check_paper_results(plan.config.report.paper_results, project=[Path.cwd(), REPOSITORY])
    log.info(
        "%s plans %d runs in %d batches (%d tables, %d figures)",
        args.config,
        len(plan.all_runs),
        len(plan.batches),
        len(plan.targets.tables),
        sum(map(len, plan.targets.figures.values())),
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``check`` to the ``cap`` parser."""
    parser = subparsers.add_parser(
        "check",
        help="check a config file as data before Snakemake loads it",
        description=__doc__,
    )
    parser.add_argument("config", type=Path, help="the config file (YAML or JSON)")
    parser.set_defaults(handler=run)
