# The embedded default: a synthetic DICOM cohort with a planted, known race signal.


rule synthesize_cohort:
    output:
        directory("data/synthetic/{dataset}"),
    params:
        cohort=cohort_options,
    log:
        "logs/synthesize_cohort/{dataset}.log",
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(60),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/synthesize_cohort.py"
