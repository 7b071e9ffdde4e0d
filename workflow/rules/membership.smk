# Kind membership (readrace.experiments.membership): per audit
# membership/{train}/{arch}/{privacy}/n{n_models}/seed{seed}, N shadow models (one job each,
# model id .../shadow{shadow}), one job scoring every pool and population record under every
# model and view (the Parquet attacks re-run from), one attack job, and one report job for
# every audit of the config. The shadow jobs share the group "membership_shadows": on SLURM,
# `--group-components membership_shadows=16` submits 16 of them as one job.


wildcard_constraints:
    privacy=r"none|dp-eps[0-9.]+(e-?[0-9]+)?",
    n_models=r"\d+",
    shadow=r"\d+",


rule membership_train:
    input:
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
        descriptor="results/{train}/dataset.json",
    output:
        model=f"{MEMBERSHIP_MODEL_DIR}/{paths.MODEL_FILE}",
        log_csv=f"{MEMBERSHIP_MODEL_DIR}/{paths.TRAIN_LOG_FILE}",
    params:
        training=membership_training,
        dp=membership_dp,
        pool=membership_pool,
        task=membership_task,
    log:
        "logs/membership_train/membership/{train}/{arch}/{privacy}/n{n_models}/seed{seed}/shadow{shadow}.log",
    group:
        "membership_shadows"
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/membership_train.py"


rule membership_scores:
    input:
        models=membership_shadow_models,
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
    output:
        f"results/{MEMBERSHIP_AUDIT}/{membership.SCORES_FILE}",
    params:
        pool=membership_pool,
        views=membership_views,
    log:
        "logs/membership_scores/membership/{train}/{arch}/{privacy}/n{n_models}/seed{seed}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/membership_scores.py"


rule membership_audit:
    input:
        scores=f"results/{MEMBERSHIP_AUDIT}/{membership.SCORES_FILE}",
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
    output:
        **{name.split(".")[0]: f"results/{MEMBERSHIP_AUDIT}/{name}" for name in membership.AUDIT_FILES},
    params:
        attack=membership_attack_settings,
    log:
        "logs/membership_audit/membership/{train}/{arch}/{privacy}/n{n_models}/seed{seed}.log",
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(30),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/membership_audit.py"


rule membership_report:
    input:
        **membership.report_inputs(MEMBERSHIP_MODELS),
    output:
        table=report(paths.MEMBERSHIP_TABLE, caption="../report/membership_table.rst", category="Membership privacy"),
        summary=paths.MEMBERSHIP_SUMMARY,
        survival=report(paths.MEMBERSHIP_SURVIVAL_FIGURE, caption="../report/membership_survival.rst",
                        category="Membership privacy"),
        disparity=report(paths.MEMBERSHIP_DISPARITY_FIGURE, caption="../report/membership_disparity.rst",
                         category="Membership privacy"),
        dp=report(paths.MEMBERSHIP_DP_FIGURE, caption="../report/membership_dp.rst", category="Membership privacy"),
        capacity=report(paths.MEMBERSHIP_CAPACITY_FIGURE, caption="../report/membership_capacity.rst",
                        category="Membership privacy"),
    params:
        audits=[audit.path for audit in membership.audits(MEMBERSHIP_MODELS)],
        n_exposed=20,
        arch_classes=membership.arch_classes(MEMBERSHIP_MODELS, config),
    log:
        "logs/membership_report.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/membership_report.py"
