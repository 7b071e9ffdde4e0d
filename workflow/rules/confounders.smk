# Kind confounders (readrace.experiments.confounders): tabular models of race from patient
# variables or pixel histograms, confounders/tabular/{train}/{features}/{estimator}/seed{seed};
# image models retrained on a subset, confounders/retrain/{train}/{arch}/{subset}/seed{seed}
# (their predictions and every score come from evaluate.smk); the stratified scores of the
# race-detection models (and of the models retrained on one manufacturer, within each
# manufacturer of their test split); and the Table-2 table, its Markdown and the forest plot.

CONFOUNDER_MODELS = MODELS[confounders.NAME]
TABULAR_DIR = paths.model_dir(confounders.TabularModel.PATH)
RETRAIN_DIR = paths.model_dir(confounders.RetrainModel.PATH)
TABULAR_PREDICTIONS = paths.predictions(confounders.TabularModel.PATH, "{train}")

# A tabular model's predictions come from its own job, never from an image model's.
ruleorder: tabular_model > predict


rule tabular_model:
    input:
        unpack(tabular_inputs),
    output:
        predictions=TABULAR_PREDICTIONS,
        search=f"{TABULAR_DIR}/{paths.SEARCH_FILE}",
    params:
        settings=tabular_settings,
        task=race_task,
        schema=PREDICTIONS_SCHEMA,
    log:
        "logs/tabular_model/confounders/{train}/{features}/{estimator}/seed{seed}.log",
    wildcard_constraints:
        features=r"[a-z_]+[0-9]*",
        estimator=r"[a-z]+",
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(60),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/tabular_model.py"


rule retrain_model:
    input:
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
        descriptor="results/{train}/dataset.json",
    output:
        model=f"{RETRAIN_DIR}/{paths.MODEL_FILE}",
        log_csv=f"{RETRAIN_DIR}/{paths.TRAIN_LOG_FILE}",
        sampler=f"{RETRAIN_DIR}/{paths.SAMPLER_FILE}",
    params:
        training=config["training"],
        task=race_task,
        sampler=retrain_sampler,
        manufacturer=retrain_manufacturer,
    log:
        "logs/retrain_model/confounders/{train}/{arch}/{subset}/seed{seed}.log",
    wildcard_constraints:
        subset=confounders.SUBSET_WILDCARD,
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(16000),
        runtime=per_attempt(240),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/retrain_model.py"


rule stratify:
    input:
        predictions=paths.PREDICTIONS,
        manifest="results/{test}/manifest.parquet",
    output:
        paths.STRATA,
    params:
        strata=stratify_settings,
        evaluation=config["evaluation"],
        schema=PREDICTIONS_SCHEMA,
    log:
        "logs/stratify/{model}/{test}.log",
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(30),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/stratify.py"


rule confounders_table:
    input:
        scores=confounders.score_files(CONFOUNDER_MODELS, config),
        image_scores=confounders.image_score_files(config),
        strata=confounders.strata_files(config),
        manifests=confounders.manifest_files(config),
    output:
        csv=report(
            paths.CONFOUNDERS_TABLE,
            caption="../report/confounders.rst",
            category="Confounders",
        ),
        markdown=paths.CONFOUNDERS_MARKDOWN,
        variables=report(
            paths.CONFOUNDER_VARIABLES,
            caption="../report/confounder_variables.rst",
            category="Confounders",
        ),
        figure=report(
            paths.CONFOUNDERS_FOREST_FIGURE,
            caption="../report/confounders_strata.rst",
            category="Confounders",
        ),
    params:
        manufacturers=confounders.manufacturer_names(config),
    log:
        "logs/confounders_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/confounders_table.py"
