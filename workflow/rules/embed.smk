rule embed:
    """Backbone features of one split, once per (dataset, backbone, split): every class,
    method and ablation reads this file (a dataset entry fixes its preprocessing)."""
    input:
        unpack(step_inputs("embed")),
        spec=registry.spec_path("embed"),
    output:
        layout.EMBEDDINGS,
    log:
        registry.log_path("embed"),
    benchmark:
        registry.timing_path("embed")
    localrule: RULE["embed"].local
    conda:
        CONDA_ENV
    threads: RULE["embed"].threads  # capped by --cores: the DataLoader workers
    resources:
        gpu=gpu_slots("embed"),
    shell:
        "cap embed {input.spec:q} --num-workers {threads} > {log:q} 2>&1"
