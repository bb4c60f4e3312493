rule embed:
    """Backbone features of one split, once per (dataset, backbone, split): every class
    and every ablation reads this file."""
    input:
        unpack(get_embed_inputs),
    output:
        layout.EMBEDDINGS,
    log:
        layout.log_path("embed"),
    benchmark:
        layout.benchmark_path("embed")
    conda:
        CONDA_ENV
    threads: 8  # capped by --cores: the DataLoader workers
    resources:
        gpu=GPU_SLOTS,
    params:
        args=get_embed_args,
    shell:
        "cap embed {params.args} --num-workers {threads} --out {output} > {log} 2>&1"
