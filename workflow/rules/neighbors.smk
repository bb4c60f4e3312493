rule neighbors:
    """Top-k_max cosine neighbours of the normal bank (self excluded) and of the test
    split, searched once per class; every K ablation slices them."""
    input:
        unpack(get_split_inputs),
    output:
        layout.NEIGHBORS,
    log:
        layout.log_path("neighbors"),
    benchmark:
        layout.benchmark_path("neighbors")
    conda:
        CONDA_ENV
    threads: 1
    params:
        args=get_neighbor_args,
    shell:
        "cap neighbors {params.args} --train-emb {input.train_emb} "
        "--test-emb {input.test_emb} --out {output} > {log} 2>&1"
