"""``cap neighbors``: the k_max nearest normal neighbours of a class's bank and of the test
split, searched once; every K of the class's runs slices them."""

from __future__ import annotations

import argparse
import logging

from cap.cli import log_startup
from cap.evaluation import jobs

log = logging.getLogger(__name__)

SUMMARY = "search k_max cosine neighbours once"


def run(args: argparse.Namespace) -> None:
    """Handler of ``cap neighbors``."""
    from cap.evaluation.neighbors import save_neighbors, search_task_neighbors
    from cap.evaluation.protocol import load_task

    job = jobs.read_spec(jobs.NeighborsJob, args.spec)
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
