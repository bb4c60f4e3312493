rule score:
    """Anomaly scores of the whole test split (baselines are fitted here: no model file)."""
    input:
        unpack(get_score_inputs),
    output:
        SCORES,
    log:
        f"results/logs/score/{RUN}.log",
    benchmark:
        f"results/benchmarks/score/{RUN}.tsv"
    params:
        args=get_run_args,
        model=get_model_arg,
    threads: 1
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} cap score {params.args} {params.model} "
        "--train-emb {input.train_emb} --test-emb {input.test_emb} "
        "--neighbors {input.neighbors} --out {output} > {log} 2>&1"


rule auroc:
    """AUROC of one run, with the run's identity, as JSON."""
    input:
        SCORES,
    output:
        AUROC,
    log:
        f"results/logs/auroc/{RUN}.log",
    benchmark:
        f"results/benchmarks/auroc/{RUN}.tsv"
    params:
        tags=get_auroc_tags,
    conda:
        CONDA_ENV
    shell:
        "cap auroc --scores {input} {params.tags} --out {output} > {log} 2>&1"


rule aggregate:
    """Every run's AUROC in one CSV, for the report."""
    input:
        all_auroc_records(),
    output:
        SUMMARY,
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cap aggregate {input} --out {output} > {log} 2>&1"
