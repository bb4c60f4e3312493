rule train:
    """Fit one trainable run whose model is kept (the runs a figure draws, or every one
    with keep_models) from cached features; no backbone in the loop."""
    input:
        unpack(get_train_inputs),
    output:
        model=layout.MODEL,
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
        args=get_train_args,
    shell:
        "OMP_NUM_THREADS={threads} cap train {params.args} --train-emb {input.train_emb} "
        "--test-emb {input.test_emb} --neighbors {input.neighbors} "
        "--out-model {output.model} > {log} 2>&1"
