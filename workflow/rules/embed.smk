rule embed:
    """Backbone features of one split, once per (dataset, backbone, split): every class,
    method and ablation reads this file (a dataset entry fixes its preprocessing)."""
    input:
        unpack(get_embed_inputs),
        spec=layout.spec_path("embed"),
    output:
        layout.EMBEDDINGS,
    log:
        layout.log_path("embed"),
    benchmark:
        layout.timing_path("embed")
    localrule: RULE["embed"].local
    conda:
        CONDA_ENV
    threads: RULE["embed"].threads  # capped by --cores: the DataLoader workers
    resources:
        gpu=gpu_slots("embed"),
    shell:
        "cap embed {input.spec:q} --num-workers {threads} > {log:q} 2>&1"
