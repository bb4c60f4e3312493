"""One rule of the workflow, as every place that lists rules reads it (:mod:`registry`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cap.workflow.plan import Plan


@dataclass(frozen=True)
class Rule:
    """A rule's name, jobs, placement and resources, and a once-rule's outputs."""

    name: str  # the rule's name; its logs and timings are filed under it
    job: str | None  # the wildcards naming one of its jobs (a pattern); None: it runs once
    twin: str | None = None  # runs that `cap` step's command and spec, for more outputs
    local: bool = False  # runs where Snakemake runs, never submitted to a cluster
    gpu: bool = False  # takes a GPU slot where a GPU is visible
    threads: int = 1  # CPUs of a job (capped by --cores)
    mem_mb: int = 4000  # memory a cluster job asks for
    runtime: int = 60  # minutes a cluster job asks for
    outputs: Mapping[str, str] = field(default_factory=dict)  # a once-rule's named outputs
    final: Callable[[Plan], bool] | None = None  # whether a plan's `all` builds its outputs
