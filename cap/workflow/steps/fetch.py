"""``cap fetch``: fill one resource under ``resources/``: link a local copy, else download."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from cap.evaluation.jobs import FetchJob
from cap.utils.errors import ConfigError
from cap.workflow import layout
from cap.workflow.rule import Rule
from cap.workflow.steps.base import Step, Steps


def build(steps: Steps, wildcards: Mapping[str, str]) -> FetchJob:
    entry = steps.config.resources[wildcards["resource"]]
    return FetchJob(
        destination=steps.plan.resource_path(wildcards["resource"]),
        local=entry.local,  # ~ and $VARS expanded where the job runs
        package=entry.package,
        url=entry.url,
        torchvision=entry.torchvision,
        instructions=" ".join(entry.instructions.split()) if entry.instructions else None,
        offline=steps.config.offline,
    )


def run(job: FetchJob, args: argparse.Namespace) -> None:
    """Symlink the first existing local copy to the destination; otherwise download it
    (url or torchvision), unless offline."""
    from cap.utils.resources import fetch_resource

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
    root = Path(layout.RESOURCES).resolve()
    where = destination.parent.resolve() / destination.name  # the link itself is replaced
    if root not in where.parents:
        raise ConfigError(
            f"{spec}: destination {str(destination)!r} is not inside {layout.RESOURCES}/ of "
            f"the working directory ({root}): a fetch writes nowhere else"
        )
    return destination


STEP = Step(
    rule=Rule("fetch", "{resource}", local=True),
    stage=1,
    spec=FetchJob,
    summary="link a local dataset/weight file into resources/, else download it",
    build=build,
    inputs=lambda steps, wildcards: {},
    run=run,
)
