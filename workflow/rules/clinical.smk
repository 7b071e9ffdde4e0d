# Kind clinical (readrace.experiments.clinical): one finding classifier per coordinate,
# clinical/{train}/{arch}/{perturbation}/seed{seed}, trained by the same engine and script
# as the race models; its test predictions and scores come from evaluate.smk. Here: its
# validation predictions (thresholds), the subgroup audit, the race probe of its features
# (and of the race model of the same coordinate and an untrained network), and the tables.


rule train_clinical:
    input:
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
        descriptor="results/{train}/dataset.json",
    output:
        model=f"{CLINICAL_MODEL_DIR}/{paths.MODEL_FILE}",
        log_csv=f"{CLINICAL_MODEL_DIR}/{paths.TRAIN_LOG_FILE}",
    params:
        training=clinical_training,
        task=clinical_task,
    log:
        "logs/train_model/clinical/{train}/{arch}/{perturbation}/seed{seed}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(16000),
        runtime=per_attempt(240),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/train_model.py"


rule predict_validation:
    input:
        model=f"{CLINICAL_MODEL_DIR}/{paths.MODEL_FILE}",
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
        descriptor="results/{train}/dataset.json",
    output:
        f"results/audits/{CLINICAL_ID}/validation-predictions.parquet",
    params:
        model=clinical_model_id,
        subset="validation",
        schema=PREDICTIONS_SCHEMA,
    log:
        "logs/predict_validation/clinical/{train}/{arch}/{perturbation}/seed{seed}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/predict_subset.py"


rule subgroup_audit:
    input:
        test=f"results/predictions/{CLINICAL_ID}/{{train}}.parquet",
        validation=f"results/audits/{CLINICAL_ID}/validation-predictions.parquet",
        manifest="results/{train}/manifest.parquet",
    output:
        f"results/audits/{CLINICAL_ID}/subgroups.csv",
    params:
        audit=clinical_setting("audit"),
        evaluation=config["evaluation"],
        schema=PREDICTIONS_SCHEMA,
    log:
        "logs/subgroup_audit/clinical/{train}/{arch}/{perturbation}/seed{seed}.log",
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(30),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/subgroup_audit.py"


# The probe writes its predictions where the shared score rule reads them
# (results/predictions/{model}/{test}.parquet, model = {clinical model}/probe/{encoder}); no
# model.pt exists for the predict rule at that id, and this rule comes first.
ruleorder: race_probe > predict


rule race_probe:
    input:
        unpack(probe_encoder_model),
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
        descriptor="results/{train}/dataset.json",
    output:
        predictions=f"results/predictions/{CLINICAL_ID}/probe/{{encoder}}/{{train}}.parquet",
        projection=f"results/audits/{CLINICAL_ID}/probe-{{encoder}}-pca.csv",
    params:
        probe=clinical_setting("probe"),
        model=clinical_model_id,
        schema=PREDICTIONS_SCHEMA,
    wildcard_constraints:
        encoder="|".join(clinical.PROBE_ENCODERS),
    log:
        "logs/race_probe/clinical/{train}/{arch}/{perturbation}/seed{seed}/{encoder}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/race_probe.py"


rule clinical_table:
    input:
        clinical.score_files(CLINICAL_MODELS),
    output:
        report(paths.CLINICAL_TABLE, caption="../report/clinical.rst", category="Clinical models"),
    log:
        "logs/clinical_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/clinical_tables.py"


rule subgroup_audit_table:
    input:
        [clinical.audit_file(m) for m in CLINICAL_MODELS],
    output:
        csv=report(paths.SUBGROUP_AUDIT_TABLE, caption="../report/subgroup_audit.rst", category="Clinical models"),
        figure=report(paths.SUBGROUP_GAPS_FIGURE, caption="../report/subgroup_audit.rst", category="Clinical models"),
    log:
        "logs/subgroup_audit_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/subgroup_audit_table.py"


rule race_probe_table:
    input:
        scores=clinical.probe_score_files(CLINICAL_MODELS),
        projections=[clinical.probe_projection(m, e) for m in CLINICAL_MODELS for e in clinical.PROBE_ENCODERS],
    output:
        csv=report(paths.RACE_PROBE_TABLE, caption="../report/race_probe.rst", category="Clinical models"),
        figure=report(paths.RACE_PROBE_FIGURE, caption="../report/race_probe.rst", category="Clinical models"),
    log:
        "logs/race_probe_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/race_probe_table.py"
