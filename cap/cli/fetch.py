"""``cap fetch``: fill one entry of the workflow's ``resources/`` folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from cap.evaluation.jobs import FetchJob, read_spec
from cap.utils.errors import ConfigError
from cap.workflow.layout import RESOURCES

SUMMARY = "link a local dataset/weight file into resources/, else download it"


def run(args: argparse.Namespace) -> None:
    """Handler of ``cap fetch``: symlink the first existing local copy to the destination;
    otherwise download it (url or torchvision), unless offline."""
    from cap.utils.resources import fetch_resource

    job = read_spec(FetchJob, args.spec)
    if job.url and job.torchvision:
        raise ConfigError(f"{args.spec}: give a url or torchvision, not both")
    destination = inside_resources(Path(job.destination), args.spec)
    kind = "torchvision" if job.torchvision else "url" if job.url else "manual"
    fetch_resource(
        kind,
        job.torchvision or destination.name,
        destination,
        local_candidates=list(job.local),
        package=job.package,
        url=job.url,
        offline=job.offline or None,
        instructions=job.instructions,
    )


def inside_resources(destination: Path, spec: Path) -> Path:
    """``destination`` where it lies in the working directory's ``resources/`` folder (as
    every planned fetch's does); a spec naming any other place is refused, so that a fetch
    never writes outside ``resources/``, whatever its spec says."""
    root = Path(RESOURCES).resolve()
    where = destination.parent.resolve() / destination.name  # the link itself is replaced
    if root not in where.parents:
        raise ConfigError(
            f"{spec}: destination {str(destination)!r} is not inside {RESOURCES}/ of the "
            f"working directory ({root}): a fetch writes nowhere else"
        )
    return destination
