"""``cap evaluate``: every run of one class and bank, each found in the run cache or
fitted, scored on the whole test split, with its metrics."""

from __future__ import annotations

import argparse
import logging

from cap.cli import log_startup, open_cache, warm_up
from cap.evaluation import jobs
from cap.utils.errors import ConfigError

log = logging.getLogger(__name__)

SUMMARY = "fit (or find in the run cache) and score every run of one class"


def run(args: argparse.Namespace) -> None:
    """Handler of ``cap evaluate``."""
    import dataclasses

    import pandas as pd

    from cap.detectors import detector_class
    from cap.evaluation.records import write_batch
    from cap.evaluation.runs import load_run_inputs, make_run

    job = jobs.read_spec(jobs.EvaluateJob, args.spec)
    if not job.runs:
        raise ConfigError(f"{args.spec}: an evaluate job needs at least one run")
    jobs.check_run_keys(job.runs, job.task, str(args.spec))
    warm_up(job.runs)
    inputs, test = load_run_inputs(
        job.task,
        job.neighbors,
        clip_k=job.clip_k,
        patch_maps=any(detector_class(spec.method).reads_patches for spec in job.runs),
    )
    startup = log_startup()
    task = inputs.task
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
        made = make_run(spec, inputs, cache=cache)
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
