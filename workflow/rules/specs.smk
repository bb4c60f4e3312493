# One spec file per job of a `cap` step (registry.SPEC_STEPS, from the table of rules): the
# step's command reads it as its one argument. A spec file is rewritten only when the
# job's spec changes (the params trigger: Snakemake compares params that are plain data),
# which reruns that job and no other.
for step in registry.SPEC_STEPS:

    rule:
        name:
            f"spec_{step}"
        output:
            registry.spec_path(step),
        log:
            registry.log_path(f"spec_{step}"),
        localrule: True
        conda:
            CONDA_ENV
        params:
            job=planned_spec(step),
        script:
            "../scripts/write_spec.py"
