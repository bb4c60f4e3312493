rule fetch:
    """Link a local copy of a dataset or weight file into resources/, else download it."""
    input:
        spec=layout.spec_path("fetch"),
    output:
        directory(layout.RESOURCE),
    log:
        layout.log_path("fetch"),
    benchmark:
        layout.timing_path("fetch")
    localrule: RULE["fetch"].local
    conda:
        CONDA_ENV
    shell:
        "cap fetch {input.spec:q} > {log:q} 2>&1"
