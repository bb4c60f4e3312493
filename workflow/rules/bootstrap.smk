# The categories of the datasets with defect masks: one batch each (localize's).
CATEGORIES = [batch for batch in PLAN.batches if PLAN.localizes(batch.dataset)]


rule bootstrap:
    """Every metric of each category with its bootstrap interval over the test images,
    and the paired differences of its methods on the same resamples."""
    input:
        records=[batch.path(layout.RECORDS) for batch in CATEGORIES],
        scores=[batch.path(layout.SCORES) for batch in CATEGORIES],
        maps=[batch.path(layout.MAPS) for batch in CATEGORIES],
        test=[
            STEPS.split_inputs(batch.dataset, batch.backbone, batch.cls)["test_emb"]
            for batch in CATEGORIES
        ],
    output:
        **RULE["bootstrap"].outputs,
    log:
        registry.log_path("bootstrap"),
    benchmark:
        registry.timing_path("bootstrap")
    localrule: RULE["bootstrap"].local
    conda:
        CONDA_ENV
    params:
        labels=PLAN.run_labels(),
        resamples=PLAN.config.report.bootstrap,
    script:
        "../scripts/bootstrap.py"
