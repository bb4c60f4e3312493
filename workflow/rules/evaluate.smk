rule evaluate:
    """Every run of one class and bank, in one process: each run is found in the run
    cache, or fitted (its kept model loaded where there is one), scores the whole test
    split and gets its AUROC."""
    input:
        unpack(step_inputs("evaluate")),
        spec=registry.spec_path("evaluate"),
    output:
        records=layout.RECORDS,
        scores=layout.SCORES,
    log:
        registry.log_path("evaluate"),
    benchmark:
        registry.timing_path("evaluate")
    localrule: RULE["evaluate"].local
    conda:
        CONDA_ENV
    threads: RULE["evaluate"].threads
    resources:
        gpu=get_evaluate_gpu_slots,
    shell:
        "OMP_NUM_THREADS={threads} cap evaluate {input.spec:q} > {log:q} 2>&1"


use rule evaluate as localize with:
    output:
        records=layout.RECORDS,
        scores=layout.SCORES,
        maps=layout.MAPS,
    log:
        registry.log_path("localize"),
    benchmark:
        registry.timing_path("localize")
    wildcard_constraints:
        dataset=PLAN.localized_datasets_pattern(),
    threads: RULE["localize"].threads


# A batch of a dataset with defect masks is localize's (evaluate, with each localizing
# run's anomaly maps); every other batch is evaluate's.
ruleorder: localize > evaluate


rule aggregate:
    """Every run in one long-form CSV: identity, settings, AUROC, timings."""
    input:
        records=PLAN.record_files(PLAN.all_runs),
    output:
        **RULE["aggregate"].outputs,
    log:
        registry.log_path("aggregate"),
    benchmark:
        registry.timing_path("aggregate")
    localrule: RULE["aggregate"].local
    conda:
        CONDA_ENV
    params:
        labels=PLAN.run_labels(),
    script:
        "../scripts/aggregate.py"
