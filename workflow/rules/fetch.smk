rule fetch:
    """Link a local copy of a dataset or weight file into resources/, else download it."""
    input:
        spec=registry.spec_path("fetch"),
    output:
        directory(layout.RESOURCE),
    log:
        registry.log_path("fetch"),
    benchmark:
        registry.timing_path("fetch")
    localrule: RULE["fetch"].local
    conda:
        CONDA_ENV
    shell:
        "cap fetch {input.spec:q} > {log:q} 2>&1"
