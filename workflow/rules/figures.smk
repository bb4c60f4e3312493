rule figure_attention:
    """Figures 2 and 7: a test image, its nearest normal images, and their weights with
    and without the reformed self-attention."""
    input:
        unpack(get_figure_inputs("attention")),
    output:
        png=report(
            f"{layout.FIGURES['attention']}.png",
            caption="../report/attention.rst",
            category="Figures",
        ),
        pdf=f"{layout.FIGURES['attention']}.pdf",
    log:
        layout.log_path("figure_attention"),
    benchmark:
        layout.timing_path("figure_attention")
    localrule: RULE["figure_attention"].local
    conda:
        CONDA_ENV
    params:
        dataset=get_figure_dataset,
        task=get_figure_task("attention"),
        figure=get_figure("attention"),
    script:
        "../scripts/figure_attention.py"


rule figure_score_curves:
    """Figures 3 and 6: mean test anomaly score of normal and anomalous images over
    training, one pair of curves per λ."""
    input:
        records=get_figure_records("score_curves"),
    output:
        png=report(
            f"{layout.FIGURES['score_curves']}.png",
            caption="../report/score_curves.rst",
            category="Figures",
        ),
        pdf=f"{layout.FIGURES['score_curves']}.pdf",
    log:
        layout.log_path("figure_score_curves"),
    benchmark:
        layout.timing_path("figure_score_curves")
    localrule: RULE["figure_score_curves"].local
    conda:
        CONDA_ENV
    params:
        curves=get_curves("score_curves"),
        figure=get_figure("score_curves"),
    script:
        "../scripts/figure_score_curves.py"


rule figure_anomaly_maps:
    """Figures 4 and 5: the difference of cos(z, f) and cos(ẑⁿ, f) over the 7×7 feature
    map, upsampled."""
    input:
        unpack(get_figure_inputs("anomaly_maps")),
    output:
        png=report(
            f"{layout.FIGURES['anomaly_maps']}.png",
            caption="../report/anomaly_maps.rst",
            category="Figures",
        ),
        pdf=f"{layout.FIGURES['anomaly_maps']}.pdf",
    log:
        layout.log_path("figure_anomaly_maps"),
    benchmark:
        layout.timing_path("figure_anomaly_maps")
    localrule: RULE["figure_anomaly_maps"].local
    conda:
        CONDA_ENV
    params:
        dataset=get_figure_dataset,
        task=get_figure_task("anomaly_maps"),
        figure=get_figure("anomaly_maps"),
    script:
        "../scripts/figure_anomaly_maps.py"


rule figure_bank_curves:
    """AUROC against the size of the normal bank: one panel per class and their mean, one
    line per method, ± the std over seeds."""
    input:
        records=get_figure_records("bank_curves"),
    output:
        png=report(
            f"{layout.FIGURES['bank_curves']}.png",
            caption="../report/bank_curves.rst",
            category="Figures",
        ),
        pdf=f"{layout.FIGURES['bank_curves']}.pdf",
    log:
        layout.log_path("figure_bank_curves"),
    benchmark:
        layout.timing_path("figure_bank_curves")
    localrule: RULE["figure_bank_curves"].local
    conda:
        CONDA_ENV
    params:
        curves=get_curves("bank_curves"),
        figure=get_figure("bank_curves"),
    script:
        "../scripts/figure_bank_curves.py"


rule figure_localization:
    """Test images of each defect type, their ground-truth contour, and each method's
    anomaly map over them, as the pixel metrics score them."""
    input:
        unpack(lambda wildcards: STEPS.localization_inputs(wildcards)),
    output:
        png=report(
            f"{layout.FIGURES['localization']}.png",
            caption="../report/localization.rst",
            category="Figures",
        ),
        pdf=f"{layout.FIGURES['localization']}.pdf",
    log:
        layout.log_path("figure_localization"),
    benchmark:
        layout.timing_path("figure_localization")
    localrule: RULE["figure_localization"].local
    conda:
        CONDA_ENV
    params:
        dataset=get_figure_dataset,
        figure=get_figure("localization"),
        columns=lambda wildcards: STEPS.localization_columns(wildcards),
    script:
        "../scripts/figure_localization.py"
