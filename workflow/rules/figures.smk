rule figure_attention:
    """Figures 2 and 7: a test image, its nearest normal images, and their weights with
    and without the reformed self-attention."""
    input:
        unpack(get_figure_run_inputs),
    output:
        png=report(
            "results/figures/attention/{dataset}/{backbone}/{cls}/{variant}.png",
            caption="../report/attention.rst",
            category="Figures",
        ),
        pdf="results/figures/attention/{dataset}/{backbone}/{cls}/{variant}.pdf",
    log:
        "results/logs/figure_attention/{dataset}/{backbone}/{cls}/{variant}.log",
    benchmark:
        "results/benchmarks/figure_attention/{dataset}/{backbone}/{cls}/{variant}.tsv"
    params:
        dataset=get_figure_dataset,
        normal_class=get_figure_normal_class,
        backbone=lambda wildcards: config["backbones"][wildcards.backbone]["model"],
        n_examples=lambda wildcards: find_figure("attention", wildcards)["n_examples"],
        n_neighbors=lambda wildcards: find_figure("attention", wildcards)["n_neighbors"],
    conda:
        CONDA_ENV
    script:
        "../scripts/figure_attention.py"


rule figure_score_curves:
    """Figures 3 and 6: mean test anomaly score of normal and anomalous images over
    training, one pair of curves per λ."""
    input:
        histories=get_curve_histories,
    output:
        png=report(
            "results/figures/score_curves/{dataset}/{backbone}/{cls}.png",
            caption="../report/score_curves.rst",
            category="Figures",
        ),
        pdf="results/figures/score_curves/{dataset}/{backbone}/{cls}.pdf",
    log:
        "results/logs/figure_score_curves/{dataset}/{backbone}/{cls}.log",
    benchmark:
        "results/benchmarks/figure_score_curves/{dataset}/{backbone}/{cls}.tsv"
    params:
        labels=lambda wildcards: [c["label"] for c in find_figure("score_curves", wildcards)["curves"]],
        title=lambda wildcards: find_figure("score_curves", wildcards).get("title", ""),
    localrule: True
    conda:
        CONDA_ENV
    script:
        "../scripts/figure_score_curves.py"


rule figure_anomaly_maps:
    """Figures 4 and 5: the difference of cos(z, f) and cos(ẑⁿ, f) over the 7×7 feature
    map, upsampled."""
    input:
        unpack(get_figure_run_inputs),
    output:
        png=report(
            "results/figures/anomaly_maps/{dataset}/{backbone}/{cls}/{variant}.png",
            caption="../report/anomaly_maps.rst",
            category="Figures",
        ),
        pdf="results/figures/anomaly_maps/{dataset}/{backbone}/{cls}/{variant}.pdf",
    log:
        "results/logs/figure_anomaly_maps/{dataset}/{backbone}/{cls}/{variant}.log",
    benchmark:
        "results/benchmarks/figure_anomaly_maps/{dataset}/{backbone}/{cls}/{variant}.tsv"
    params:
        dataset=get_figure_dataset,
        normal_class=get_figure_normal_class,
        backbone=lambda wildcards: config["backbones"][wildcards.backbone]["model"],
        n_examples=lambda wildcards: find_figure("anomaly_maps", wildcards)["n_examples"],
    conda:
        CONDA_ENV
    script:
        "../scripts/figure_anomaly_maps.py"


rule fig_attention:
    input:
        figure_paths("attention"),


rule fig_score_curves:
    input:
        figure_paths("score_curves"),


rule fig_anomaly_maps:
    input:
        figure_paths("anomaly_maps"),
