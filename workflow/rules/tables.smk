rule table:
    """One paper table (CSV, Markdown, LaTeX, per-class CSV) from its runs' AUROCs."""
    input:
        records=get_table_records,
        paper=config["report"]["paper_results"],
    output:
        csv="results/tables/{table}.csv",
        md=report(
            "results/tables/{table}.md",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        tex="results/tables/{table}.tex",
        per_class="results/tables/{table}_per_class.csv",
    log:
        "results/logs/table/{table}.log",
    benchmark:
        "results/benchmarks/table/{table}.tsv"
    params:
        spec=lambda wildcards: resolved_table_spec(wildcards.table),
    localrule: True
    conda:
        CONDA_ENV
    script:
        "../scripts/table.py"


rule table1:
    input:
        table_outputs("table1"),


rule table2:
    input:
        table_outputs("table2"),


rule table3:
    input:
        table_outputs("table3"),


rule table4:
    input:
        table_outputs("table4"),
