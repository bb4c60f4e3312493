rule claims:
    """Every claim (the paper's and the config's own) judged over classes: paired
    differences, t-interval, Wilcoxon, verdict."""
    input:
        runs=layout.RUNS_TABLE,
        tables=[layout.table_files(table)["csv"] for table in PLAN.targets.tables],
        paper=PLAN.config.report.paper_results,
    output:
        **RULE["claims"].outputs,
    log:
        registry.log_path("claims"),
    benchmark:
        registry.timing_path("claims")
    localrule: RULE["claims"].local
    conda:
        CONDA_ENV
    params:
        job=dataclasses.asdict(PLAN.claims_job()),
    script:
        "../scripts/claims.py"


rule leaderboard:
    """The methods of the config's leaderboard table ranked on each of its datasets, with
    intervals over classes and the seconds each run took."""
    input:
        runs=layout.RUNS_TABLE,
    output:
        **RULE["leaderboard"].outputs,
    log:
        registry.log_path("leaderboard"),
    benchmark:
        registry.timing_path("leaderboard")
    localrule: RULE["leaderboard"].local
    conda:
        CONDA_ENV
    params:
        spec=lambda wildcards: PLAN.leaderboard_spec(),
    script:
        "../scripts/leaderboard.py"


rule concordance:
    """Do the backbones (the config's concordance table's datasets) rank its methods alike?"""
    input:
        runs=layout.RUNS_TABLE,
    output:
        **RULE["concordance"].outputs,
    log:
        registry.log_path("concordance"),
    benchmark:
        registry.timing_path("concordance")
    localrule: RULE["concordance"].local
    conda:
        CONDA_ENV
    params:
        spec=lambda wildcards: PLAN.targets.table_spec(PLAN.config.report.concordance),
    script:
        "../scripts/concordance.py"


rule claims_figure:
    """The config's own claims: each one's paired difference per dataset (and pooled) with
    its interval."""
    input:
        claims=layout.CLAIMS,
    output:
        **RULE["claims_figure"].outputs,
    log:
        registry.log_path("claims_figure"),
    benchmark:
        registry.timing_path("claims_figure")
    localrule: RULE["claims_figure"].local
    conda:
        CONDA_ENV
    params:
        claims=[claim.text for claim in PLAN.claims_job().claims],
    script:
        "../scripts/claims_figure.py"


rule report:
    """The reproduction report: our numbers beside the paper's, claims, the other
    once-rules' sections (the leaderboard), environment, runtimes and the config used."""
    input:
        unpack(lambda wildcards: get_report_sections()),
        runs=layout.RUNS_TABLE,
        claims=layout.CLAIMS,
        tables=[layout.table_files(table)["csv"] for table in PLAN.targets.tables],
        rendered=[layout.table_files(table)["md"] for table in PLAN.targets.tables],
        figures=[path for path in PLAN.targets.all_figures() if path.endswith(".png")],
        paper=PLAN.config.report.paper_results,
        embeddings=PLAN.embedding_files(),
    output:
        md=report(
            RULE["report"].outputs["md"],
            caption="../report/reproduction.rst",
            category="Report",
        ),
    log:
        registry.log_path("report"),
    benchmark:
        registry.timing_path("report")
    localrule: RULE["report"].local
    conda:
        CONDA_ENV
    params:
        job=dataclasses.asdict(PLAN.report_job()),
        sections=list(get_report_sections()),
    script:
        "../scripts/report.py"
