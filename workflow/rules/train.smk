rule train:
    """Fit one trainable run whose model is kept (the runs a figure draws, or every one
    with keep_models) from cached features; no backbone in the loop."""
    input:
        unpack(step_inputs("train")),
        spec=registry.spec_path("train"),
    output:
        model=layout.MODEL,
    log:
        registry.log_path("train"),
    benchmark:
        registry.timing_path("train")
    localrule: RULE["train"].local
    conda:
        CONDA_ENV
    threads: RULE["train"].threads
    resources:
        gpu=gpu_slots("train"),
    shell:
        "OMP_NUM_THREADS={threads} cap train {input.spec:q} > {log:q} 2>&1"
