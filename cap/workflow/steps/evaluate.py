"""``cap evaluate``: every run of one class and bank, each found in the run cache or
fitted (its kept model loaded where there is one), scored on the whole test split, with
its metrics; on datasets with defect masks, the ``localize`` twin also keeps the maps."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from cap.evaluation import jobs
from cap.evaluation.jobs import EvaluateJob, Identity
from cap.utils.errors import ConfigError
from cap.workflow import layout
from cap.workflow.rule import Rule
from cap.workflow.steps.base import Step, Steps

log = logging.getLogger(__name__)


def build(steps: Steps, wildcards: Mapping[str, str]) -> EvaluateJob:
    """Every run of the batch, and the identity its records carry."""
    plan = steps.plan
    batch = plan.find_batch(wildcards)
    return EvaluateJob(
        task=steps.task(batch),
        neighbors=batch.path(layout.NEIGHBORS),
        runs=tuple(steps.run_spec(run) for run in plan.batch_runs(batch)),
        identity=Identity(dataset=batch.dataset, backbone=batch.backbone, cls=batch.cls),
        records=batch.path(layout.RECORDS),
        scores=batch.path(layout.SCORES),
        cache=steps.cache(),
        clip_k=plan.datasets[batch.dataset].clip_k,
        maps=batch.path(layout.MAPS) if plan.localizes(batch.dataset) else None,
    )


def inputs(steps: Steps, wildcards: Mapping[str, str]) -> dict[str, Any]:
    """The class's inputs, plus the models of the batch's kept runs (fitted first, so
    that the batch finds them in the cache)."""
    plan = steps.plan
    batch = plan.find_batch(wildcards)
    models = [run.path(layout.MODEL) for run in plan.batch_runs(batch) if run in plan.kept_runs]
    return {**steps.class_inputs(batch), "models": models}


def run(job: EvaluateJob, args: argparse.Namespace) -> None:
    import dataclasses

    import pandas as pd

    from cap.detectors import detector_class
    from cap.evaluation.cache import open_cache
    from cap.evaluation.records import write_batch
    from cap.evaluation.runs import load_run_inputs, make_run, warm_up
    from cap.utils.logs import log_startup

    if not job.runs:
        raise ConfigError(f"{args.spec}: an evaluate job needs at least one run")
    jobs.check_run_keys(job.runs, job.task, str(args.spec))
    warm_up(job.runs)
    run_inputs, test = load_run_inputs(
        job.task,
        job.neighbors,
        clip_k=job.clip_k,
        patch_maps=any(detector_class(spec.method).reads_patches for spec in job.runs),
    )
    startup = log_startup()
    task = run_inputs.task
    identity = {
        **dataclasses.asdict(job.identity),
        "class_name": task.normal_class_name,
        "preprocessing": test.attrs.get("preprocessing"),  # the features' own provenance
        "backbone_model": test.attrs.get("backbone"),
        "weights": test.attrs.get("weights"),
        "n_train": len(task.bank),
        "n_test": len(task.test),
        "n_anomalous": int(task.is_anomaly.sum()),
    }
    cache = open_cache(job.cache)
    runs, scores, maps = [], [], []
    for spec in job.runs:
        made = make_run(spec, run_inputs, cache=cache)
        runs.append({**identity, **made.record})
        scores.append(made.scores)
        maps.append(made.maps)
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
        maps_path=job.maps,
        maps=maps,
    )


STEP = Step(
    rule=Rule("evaluate", layout.BATCH, gpu=True, mem_mb=8000),
    stage=5,
    spec=EvaluateJob,
    summary="fit (or find in the run cache) and score every run of one class",
    build=build,
    inputs=inputs,
    run=run,
)
