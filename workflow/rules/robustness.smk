# Kind robustness (readrace.experiments.robustness): FGSM / PGD against the race and the
# clinical model of robustness/{train}/{arch}/seed{seed}, every perturbed batch measured by
# both models (the cross-task attack); per-image rows, their summary per race group with
# patient-bootstrap intervals, each image's smallest flipping epsilon; the tables and curves.


rule attack:
    input:
        unpack(robustness_models),
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
    output:
        rows=f"results/audits/{ROBUSTNESS_ID}/attacks.parquet",
        summary=f"results/audits/{ROBUSTNESS_ID}/summary.csv",
        min_epsilon=f"results/audits/{ROBUSTNESS_ID}/min_epsilon.csv",
    params:
        attack=robustness_settings,
        evaluation=config["evaluation"],
    log:
        "logs/attack/robustness/{train}/{arch}/seed{seed}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(120),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/attack.py"


rule robustness_table:
    input:
        summaries=[robustness.summary_file(a) for a in ROBUSTNESS_AUDITS],
        min_epsilon=[robustness.min_epsilon_file(a) for a in ROBUSTNESS_AUDITS],
    output:
        csv=report(paths.ROBUSTNESS_TABLE, caption="../report/robustness.rst", category="Robustness"),
        min_epsilon=paths.ROBUSTNESS_MIN_EPS_TABLE,
        figure=report(paths.ROBUSTNESS_FIGURE, caption="../report/robustness.rst", category="Robustness"),
    params:
        coordinates=[a.columns for a in ROBUSTNESS_AUDITS],
    log:
        "logs/robustness_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/robustness_table.py"
