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


rule leaderboard:
    """The methods of the config's leaderboard table ranked on each of its datasets, with
    intervals over classes and the seconds each run took."""
    input:
        runs=layout.RUNS_TABLE,
    output:
        **layout.LEADERBOARD,
    log:
        layout.log_path("leaderboard"),
    benchmark:
        layout.benchmark_path("leaderboard")
    localrule: True
    conda:
        CONDA_ENV
    params:
        spec=get_leaderboard_spec,
    script:
        "../scripts/leaderboard.py"


rule report:
    """The reproduction report: our numbers beside the paper's, claims, environment,
    runtimes and the config used."""
    input:
        **get_leaderboard_inputs(),
        runs=layout.RUNS_TABLE,
        claims=layout.CLAIMS,
        tables=[layout.table_files(table)["csv"] for table in config["tables"]],
        rendered=[layout.table_files(table)["md"] for table in config["tables"]],
        figures=[path for path in PLAN.targets.all_figures() if path.endswith(".png")],
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
        backbones={
            dataset: (PLAN.backbone_of(dataset), PLAN.backbone_model(PLAN.backbone_of(dataset)))
            for dataset in PLAN.datasets
        },
        tolerance=config["report"]["tolerance"],
        config=config,
    script:
        "../scripts/report.py"
