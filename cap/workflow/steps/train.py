"""``cap train``: fit one trainable run and keep its model, for the figures that draw it
(or every run with ``keep_models``); its scores go to the run cache for its batch."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import replace

from cap.evaluation import jobs
from cap.evaluation.jobs import TrainJob
from cap.workflow import layout
from cap.workflow.rule import Rule
from cap.workflow.steps.base import Step, Steps
from cap.workflow.targets import Run


def kept_run(wildcards: Mapping[str, str]) -> Run:
    """The kept run behind ``train`` job wildcards."""
    fields = {key: wildcards[key] for key in ("dataset", "backbone", "cls", "bank", "setting")}
    return Run(**fields, seed=int(wildcards["seed"]))


def build(steps: Steps, wildcards: Mapping[str, str]) -> TrainJob:
    run = kept_run(wildcards)
    batch = steps.plan.batch_of(run)
    return TrainJob(
        task=steps.task(batch),
        neighbors=batch.path(layout.NEIGHBORS),
        run=replace(steps.run_spec(run), model=None),
        model=run.path(layout.MODEL),
        cache=steps.cache(),
        clip_k=steps.plan.datasets[run.dataset].clip_k,
    )


def inputs(steps: Steps, wildcards: Mapping[str, str]) -> dict[str, str]:
    return steps.class_inputs(steps.plan.find_batch(wildcards))


def run(job: TrainJob, args: argparse.Namespace) -> None:
    from cap.evaluation.cache import open_cache
    from cap.evaluation.runs import load_run_inputs, train_run, warm_up
    from cap.utils.logs import log_startup

    jobs.check_run_keys((job.run,), job.task, str(args.spec))
    warm_up([job.run])
    run_inputs, _ = load_run_inputs(job.task, job.neighbors, clip_k=job.clip_k)
    log_startup()
    train_run(job.run, run_inputs, job.model, cache=open_cache(job.cache))


STEP = Step(
    rule=Rule("train", layout.RUN, gpu=True, mem_mb=8000),
    stage=4,
    spec=TrainJob,
    summary="fit one trainable run and keep its model",
    build=build,
    inputs=inputs,
    run=run,
)
