rule embed:
    """Backbone features of one split, once per (dataset, backbone, split): every class
    and every ablation reads this file."""
    input:
        unpack(get_embed_inputs),
    output:
        EMBEDDINGS,
    log:
        "results/logs/embed/{dataset}/{backbone}/{subset}/{split}.log",
    benchmark:
        "results/benchmarks/embed/{dataset}/{backbone}/{subset}/{split}.tsv"
    params:
        args=get_embed_args,
    threads: 8  # capped by --cores: the DataLoader workers
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        "cap embed {params.args} --num-workers {threads} --out {output} > {log} 2>&1"
