"""``cap fetch``: fill one entry of the workflow's ``resources/`` folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fetch`` sub-command."""
    parser = subparsers.add_parser(
        "fetch",
        help="link a local dataset/weight file into resources/, else download it",
        description="Symlink the first existing --local copy to --destination; otherwise download "
        "it (--url or --torchvision), unless offline.",
    )
    parser.add_argument("--destination", required=True, type=Path, help="path to fill")
    parser.add_argument(
        "--local",
        action="append",
        default=[],
        metavar="PATH",
        help="candidate local copy (repeatable)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--url", help="download this URL when no local copy exists")
    source.add_argument(
        "--torchvision",
        choices=("cifar10", "cifar100", "fmnist"),
        help="let torchvision download this dataset",
    )
    parser.add_argument(
        "--instructions", help="how to obtain the resource, shown when it is missing"
    )
    parser.add_argument(
        "--offline", action="store_true", help="never download (also: CAP_OFFLINE=1)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    """Handler of ``cap fetch``."""
    from cap.utils.resources import fetch_resource

    kind = "torchvision" if args.torchvision else "url" if args.url else "manual"
    fetch_resource(
        kind,
        args.torchvision or args.destination.name,
        args.destination,
        local_candidates=args.local,
        url=args.url,
        offline=args.offline or None,
        instructions=args.instructions,
    )
