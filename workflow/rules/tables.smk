rule table:
    """One paper table (CSV, Markdown, LaTeX, per-class CSV) from its runs' AUROCs."""
    input:
        records=get_table_records,
        paper=PLAN.config.report.paper_results,
    output:
        csv=layout.table_files("{table}")["csv"],
        md=report(
            layout.table_files("{table}")["md"],
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        tex=layout.table_files("{table}")["tex"],
        per_class=layout.table_files("{table}")["per_class"],
    log:
        registry.log_path("table"),
    benchmark:
        registry.timing_path("table")
    localrule: RULE["table"].local
    conda:
        CONDA_ENV
    params:
        spec=get_table_spec,
        labels=get_table_labels,
    script:
        "../scripts/table.py"
