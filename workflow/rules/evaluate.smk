rule score:
    """Anomaly scores of the whole test split (baselines are fitted here: no model file)."""
    input:
        unpack(get_score_inputs),
    output:
        layout.SCORES,
    log:
        layout.log_path("score"),
    benchmark:
        layout.benchmark_path("score")
    conda:
        CONDA_ENV
    threads: 1
    params:
        args=get_run_args,
        model=get_model_arg,
    shell:
        "OMP_NUM_THREADS={threads} cap score {params.args} {params.model} "
        "--train-emb {input.train_emb} --test-emb {input.test_emb} "
        "--neighbors {input.neighbors} --out {output} > {log} 2>&1"


rule auroc:
    """AUROC of one run, with the run's identity, as JSON."""
    input:
        layout.SCORES,
    output:
        layout.AUROC,
    log:
        layout.log_path("auroc"),
    benchmark:
        layout.benchmark_path("auroc")
    conda:
        CONDA_ENV
    params:
        tags=get_auroc_tags,
    shell:
        "cap auroc --scores {input} {params.tags} --out {output} > {log} 2>&1"


rule aggregate:
    """Every run's AUROC in one CSV, for the report."""
    input:
        [run.path(layout.AUROC) for run in PLAN.all_runs],
    output:
        layout.SUMMARY,
    log:
        layout.log_path("aggregate"),
    benchmark:
        layout.benchmark_path("aggregate")
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cap aggregate {input} --out {output} > {log} 2>&1"
