rule neighbors:
    """Top-k_max cosine neighbours of the normal bank (self excluded) and of the test
    split, searched once per class and bank; every K slices them."""
    input:
        unpack(step_inputs("neighbors")),
        spec=registry.spec_path("neighbors"),
    output:
        layout.NEIGHBORS,
    log:
        registry.log_path("neighbors"),
    benchmark:
        registry.timing_path("neighbors")
    localrule: RULE["neighbors"].local
    conda:
        CONDA_ENV
    threads: RULE["neighbors"].threads
    shell:
        "cap neighbors {input.spec:q} > {log:q} 2>&1"
