# One rule per figure kind (cap.workflow.figures): figure_<kind> draws each configured
# figure of that kind, PNG and PDF, with the kind's caption in Snakemake's report.
for kind in FIGURE_KINDS.values():

    rule:
        name:
            kind.rule.name
        input:
            unpack(figure_inputs(kind.name)),
        output:
            png=report(
                f"{kind.path}.png",
                caption=f"../report/{kind.name}.rst",
                category="Figures",
            ),
            pdf=f"{kind.path}.pdf",
        log:
            registry.log_path(kind.rule.name),
        benchmark:
            registry.timing_path(kind.rule.name)
        localrule: kind.rule.local
        conda:
            CONDA_ENV
        params:
            kind=kind.name,
            spec=figure_params(kind.name),
        script:
            "../scripts/figure.py"
