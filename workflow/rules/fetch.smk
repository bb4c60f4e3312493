rule fetch:
    """Link a local copy of a dataset or weight file into resources/, else download it."""
    output:
        directory(layout.RESOURCE),
    log:
        layout.log_path("fetch"),
    benchmark:
        layout.benchmark_path("fetch")
    localrule: True
    conda:
        CONDA_ENV
    params:
        args=get_fetch_args,
    shell:
        "cap fetch {params.args} > {log} 2>&1"
