rule evaluate:
    """A batch of runs of one class, in one process: each run is fitted (or its kept model
    loaded), scores the whole test split and gets its AUROC."""
    input:
        unpack(get_evaluate_inputs),
    output:
        records=layout.RECORDS,
        scores=layout.SCORES,
    log:
        layout.log_path("evaluate"),
    benchmark:
        layout.benchmark_path("evaluate")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=GPU_SLOTS,
    params:
        args=get_evaluate_args,
    shell:
        "OMP_NUM_THREADS={threads} cap evaluate {params.args} --train-emb {input.train_emb} "
        "--test-emb {input.test_emb} --neighbors {input.neighbors} "
        "--out-records {output.records} --out-scores {output.scores} > {log} 2>&1"


rule aggregate:
    """Every run in one long-form CSV: identity, settings, AUROC, timings."""
    input:
        PLAN.record_files(PLAN.all_runs),
    output:
        layout.RUNS_TABLE,
    log:
        layout.log_path("aggregate"),
    benchmark:
        layout.benchmark_path("aggregate")
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cap aggregate {input} --out {output} > {log} 2>&1"
