"""``cap train``: fit one trainable run and keep its model, for the figures that draw it."""

from __future__ import annotations

import argparse

from cap.cli import log_startup, open_cache, warm_up
from cap.evaluation import jobs

SUMMARY = "fit one trainable run and keep its model"


def run(args: argparse.Namespace) -> None:
    """Handler of ``cap train``."""
    from cap.evaluation.runs import load_run_inputs, train_run

    job = jobs.read_spec(jobs.TrainJob, args.spec)
    jobs.check_run_keys((job.run,), job.task, str(args.spec))
    warm_up([job.run])
    inputs, _ = load_run_inputs(job.task, job.neighbors, clip_k=job.clip_k)
    log_startup()
    train_run(job.run, inputs, job.model, cache=open_cache(job.cache))
