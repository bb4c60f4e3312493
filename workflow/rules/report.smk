rule report:
    """The reproduction report: our numbers beside the paper's, claims, environment,
    runtimes and the config used."""
    input:
        summary=SUMMARY,
        tables=[f"results/tables/{table}.csv" for table in config["tables"]],
        figures=[path for path in all_figures() if path.endswith(".png")],
        paper=config["report"]["paper_results"],
    output:
        md=report(
            "results/report/reproduction.md",
            caption="../report/reproduction.rst",
            category="Report",
        ),
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    params:
        backbones_used={name: config["backbones"][d["backbone"]]["model"] for name, d in DATASETS.items()},
        tolerance=config["report"]["tolerance"],
        config=config,
        benchmark_dir="results/benchmarks",
        embedding_dir="results/embeddings",
    localrule: True
    conda:
        CONDA_ENV
    script:
        "../scripts/report.py"
