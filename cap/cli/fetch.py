"""``cap fetch``: fill one entry of the workflow's ``resources/`` folder."""

from __future__ import annotations

import argparse

from cap.benchmark.jobs import FetchJob, read_spec

SUMMARY = "link a local dataset/weight file into resources/, else download it"


def run(args: argparse.Namespace) -> None:
    """Handler of ``cap fetch``: symlink the first existing local copy to the destination;
    otherwise download it (url or torchvision), unless offline."""
    from pathlib import Path

    from cap.utils.errors import ConfigError
    from cap.utils.resources import fetch_resource

    job = read_spec(FetchJob, args.spec)
    if job.url and job.torchvision:
        raise ConfigError(f"{args.spec}: give a url or torchvision, not both")
    destination = Path(job.destination)
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
