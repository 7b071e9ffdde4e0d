# The embedded default: a synthetic DICOM cohort with a planted, known race signal.


rule synthesize_cohort:
    output:
        directory("data/synthetic/{dataset}"),
    params:
        cohort=cohort_options,
    log:
        "logs/synthesize_cohort/{dataset}.log",
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/readrace.yaml"
    script:
        "../scripts/synthesize_cohort.py"
