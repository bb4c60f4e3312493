rule fetch:
    """Link a local copy of a dataset or weight file into resources/, else download it."""
    output:
        directory("resources/{resource}"),
    log:
        "results/logs/fetch/{resource}.log",
    benchmark:
        "results/benchmarks/fetch/{resource}.tsv"
    params:
        args=get_fetch_args,
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cap fetch {params.args} > {log} 2>&1"
