rule neighbors:
    """Top-k_max cosine neighbours of the normal bank (self excluded) and of the test
    split, searched once per class; every K ablation slices them."""
    input:
        unpack(get_split_inputs),
    output:
        NEIGHBORS,
    log:
        "results/logs/neighbors/{dataset}/{backbone}/{cls}.log",
    benchmark:
        "results/benchmarks/neighbors/{dataset}/{backbone}/{cls}.tsv"
    params:
        args=get_split_args,
        k_max=lambda wildcards: k_max(wildcards.dataset),
        clip=lambda wildcards: "--clip-k" if DATASETS[wildcards.dataset]["clip_k"] else "",
    threads: 1
    conda:
        CONDA_ENV
    shell:
        "cap neighbors {params.args} --k-max {params.k_max} {params.clip} "
        "--train-emb {input.train_emb} --test-emb {input.test_emb} --out {output} > {log} 2>&1"
