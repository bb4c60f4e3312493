rule train:
    """Fit CAP on one normal class from cached features (no backbone in the loop); the
    history records test-score summaries after every epoch (Figures 3 and 6)."""
    input:
        unpack(get_run_inputs),
    output:
        model=layout.MODEL,
        history=layout.HISTORY,
    log:
        layout.log_path("train"),
    benchmark:
        layout.benchmark_path("train")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=GPU_SLOTS,
    params:
        args=get_run_args,
    shell:
        "OMP_NUM_THREADS={threads} cap train {params.args} --train-emb {input.train_emb} "
        "--test-emb {input.test_emb} --neighbors {input.neighbors} "
        "--out-model {output.model} --out-history {output.history} > {log} 2>&1"
