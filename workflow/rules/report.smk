rule claims:
    """Every claim (the paper's and the config's own) judged over classes: paired
    differences, t-interval, Wilcoxon, verdict."""
    input:
        runs=layout.RUNS_TABLE,
        tables=[layout.table_files(table)["csv"] for table in config["tables"]],
        paper=config["report"]["paper_results"],
    output:
        layout.CLAIMS,
    log:
        layout.log_path("claims"),
    benchmark:
        layout.benchmark_path("claims")
    localrule: True
    conda:
        CONDA_ENV
    params:
        paper_tables={name: table["paper"] for name, table in config["tables"].items()},
        table_classes={name: table["classes"] for name, table in config["tables"].items()},
        claims=config["report"]["claims"],
    script:
        "../scripts/claims.py"


rule report:
    """The reproduction report: our numbers beside the paper's, claims, environment,
    runtimes and the config used."""
    input:
        runs=layout.RUNS_TABLE,
        claims=layout.CLAIMS,
        tables=[layout.table_files(table)["csv"] for table in config["tables"]],
        rendered=[layout.table_files(table)["md"] for table in config["tables"]],
        figures=[path for path in PLAN.all_figures() if path.endswith(".png")],
        paper=config["report"]["paper_results"],
        embeddings=PLAN.embedding_files(),
    output:
        md=report(
            layout.REPORT,
            caption="../report/reproduction.rst",
            category="Report",
        ),
    log:
        layout.log_path("report"),
    benchmark:
        layout.benchmark_path("report")
    localrule: True
    conda:
        CONDA_ENV
    params:
        backbones_used={dataset: PLAN.backbone_of(dataset) for dataset in PLAN.datasets},
        backbone_models={
            dataset: PLAN.backbone_model(PLAN.backbone_of(dataset)) for dataset in PLAN.datasets
        },
        tolerance=config["report"]["tolerance"],
        # this config's jobs only (params, not inputs: a missing one must not rerun its job)
        benchmarks=PLAN.benchmark_files(),
        config=config,
    script:
        "../scripts/report.py"
