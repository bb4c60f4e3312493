"""Sub-commands from embeddings to AUROC, one per workflow rule: ``neighbors``, ``train``
(a kept model) and ``evaluate`` (every run of one class), each reading its job's spec
file (:mod:`cap.benchmark.jobs`)."""

from __future__ import annotations

import argparse
import logging

from cap.benchmark import jobs
from cap.cli import add_spec_command, log_startup
from cap.utils.errors import ConfigError

log = logging.getLogger(__name__)


def run_neighbors(args: argparse.Namespace) -> None:
    from cap.benchmark.neighbors import save_neighbors, search_task_neighbors
    from cap.benchmark.protocol import load_task

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


def run_train(args: argparse.Namespace) -> None:
    from cap.benchmark.runs import load_run_inputs, train_run

    job = jobs.read_spec(jobs.TrainJob, args.spec)
    jobs.check_run_keys((job.run,), job.task, str(args.spec))
    _import_runtime([job.run])
    inputs, _ = load_run_inputs(job.task, job.neighbors, clip_k=job.clip_k)
    log_startup()
    train_run(job.run, inputs, job.model, cache=_cache(job.cache))


def run_evaluate(args: argparse.Namespace) -> None:
    import dataclasses

    import pandas as pd

    from cap.benchmark.records import write_batch
    from cap.benchmark.runs import load_run_inputs, make_run

    job = jobs.read_spec(jobs.EvaluateJob, args.spec)
    if not job.runs:
        raise ConfigError(f"{args.spec}: an evaluate job needs at least one run")
    jobs.check_run_keys(job.runs, job.task, str(args.spec))
    _import_runtime(job.runs)
    inputs, test = load_run_inputs(job.task, job.neighbors, clip_k=job.clip_k)
    startup = log_startup()
    task = inputs.task
    identity = {
        **dataclasses.asdict(job.identity),
        "class_name": task.normal_class_name,
        "backbone_model": test.attrs.get("backbone"),
        "weights": test.attrs.get("weights"),
        "n_train": len(task.bank),
        "n_test": len(task.test),
        "n_anomalous": int(task.is_anomaly.sum()),
    }
    cache = _cache(job.cache)
    runs, scores = [], []
    for spec in job.runs:
        record, values = make_run(spec, inputs, cache=cache)
        runs.append({**identity, **record})
        scores.append(values)
    fitted = [f"{run['setting']}/seed{run['seed']}" for run in runs if run["source"] == "fit"]
    log.info("%d of %d runs fitted here, the others read back", len(fitted), len(runs))
    items = pd.DataFrame(
        {"id": task.test_ids, "label": task.test_labels, "is_anomaly": task.is_anomaly}
    )
    write_batch(
        job.records,
        job.scores,
        job={"startup_s": startup, "fitted": fitted},
        runs=runs,
        scores=scores,
        test=items,
    )


def _cache(folder: str | None):
    from cap.benchmark.cache import RunCache

    return None if folder is None else RunCache(folder)


def _import_runtime(specs) -> None:
    """Where a method trains, import torch, and the compiler stack that its optimisers
    import at their first step (about a second), before the first fit: the start-up
    then includes them, and each run's fit seconds are its own."""
    from cap.detectors import detector_class

    if any(detector_class(spec.method).trainable for spec in specs):
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)]).step()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the evaluation sub-commands to the ``cap`` parser."""
    add_spec_command(
        subparsers, "neighbors", jobs.NeighborsJob, "search k_max cosine neighbours once",
        run_neighbors,
    )  # fmt: skip
    add_spec_command(
        subparsers, "train", jobs.TrainJob, "fit one trainable run and keep its model", run_train
    )
    add_spec_command(
        subparsers, "evaluate", jobs.EvaluateJob,
        "fit (or find in the run cache) and score every run of one class", run_evaluate,
    )  # fmt: skip
