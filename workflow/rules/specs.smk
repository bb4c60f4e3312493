# One spec file per job of a `cap` step (cap.benchmark.jobs): the rule's command reads it
# as its one argument. A spec file is rewritten only when the job's spec changes (the
# params trigger: Snakemake compares params that are plain data, hence the dicts), which
# reruns that job and no other.
from cap.benchmark.jobs import write_spec_data

SPECS = {
    "fetch": get_fetch_job,
    "embed": get_embed_job,
    "neighbors": get_neighbors_job,
    "train": get_train_job,
    "evaluate": get_evaluate_job,
}

for step, get_job in SPECS.items():

    rule:
        name:
            f"spec_{step}"
        output:
            layout.spec_path(step),
        log:
            layout.log_path(f"spec_{step}"),
        localrule: True
        params:
            job=planned_spec(step, get_job),
        run:
            write_spec_data(output[0], params.job)
