"""``cap neighbors``: the k_max nearest normal neighbours of a class's bank and of the
test split, searched once; every K of the class's runs slices them."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping

from cap.evaluation.jobs import NeighborsJob
from cap.workflow import layout
from cap.workflow.rule import Rule
from cap.workflow.steps.base import Step, Steps

log = logging.getLogger(__name__)


def build(steps: Steps, wildcards: Mapping[str, str]) -> NeighborsJob:
    batch = steps.plan.find_batch(wildcards)
    return NeighborsJob(
        task=steps.task(batch),
        k_max=steps.plan.k_max(batch.dataset, batch.bank),
        out=batch.path(layout.NEIGHBORS),
        clip_k=steps.plan.datasets[batch.dataset].clip_k,
    )


def inputs(steps: Steps, wildcards: Mapping[str, str]) -> dict[str, str]:
    return steps.split_inputs(wildcards["dataset"], wildcards["backbone"], wildcards["cls"])


def run(job: NeighborsJob, args: argparse.Namespace) -> None:
    from cap.evaluation.neighbors import save_neighbors, search_task_neighbors
    from cap.evaluation.protocol import load_task
    from cap.utils.logs import log_startup

    task, _ = load_task(job.task)
    log_startup()
    k_max = job.k_max
    if job.clip_k and k_max >= len(task.bank):
        k_max = len(task.bank) - 1
        log.warning(
            "k_max=%d exceeds the bank of %d items: searching %d", job.k_max, len(task.bank), k_max
        )
    neighbors = search_task_neighbors(task, k_max)
    save_neighbors(job.out, neighbors, k_max=k_max, normal_class=str(job.task.normal_class))
    log.info("searched %d train and %d test items, k_max=%d", len(task.bank), len(task.test), k_max)


STEP = Step(
    rule=Rule("neighbors", layout.BATCH),
    stage=3,
    spec=NeighborsJob,
    summary="search k_max cosine neighbours once",
    build=build,
    inputs=inputs,
    run=run,
)
