# Kind localisation (readrace.experiments.localisation): lung / non-lung, the 3x3 grid and
# saliency. Its models are race models: the full model of race_detection (test-time
# protocol) or one trained under the perturbation by train_model (retrain protocol); their
# predictions come from predict and their scores from score (evaluate.smk); their lung
# masks from the segmentation stage (lung_masks in common.smk). Here: Grad-CAM of the full
# models, the table and the figures.

rule saliency:
    input:
        unpack(saliency_lung_masks),
        model=f"{RACE_MODEL_DIR.replace('{perturbation}', 'none')}/{paths.MODEL_FILE}",
        manifest="results/{test}/manifest.parquet",
        cache="results/{test}/cache/images.npy",
    output:
        maps=f"{SALIENCY_DIR}/{paths.SALIENCY_FILES['maps']}",
        shares=f"{SALIENCY_DIR}/{paths.SALIENCY_FILES['shares']}",
        masks=f"{SALIENCY_DIR}/{paths.SALIENCY_FILES['masks']}",
    params:
        fraction=localisation.SALIENT_FRACTION,
    log:
        "logs/saliency/race_detection/{train}/{arch}/none/seed{seed}/{test}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/saliency.py"


rule localisation_table:
    input:
        localisation.score_files(LOCALISATION_MODELS),
    output:
        report(paths.LOCALISATION_TABLE, caption="../report/localisation.rst", category="Localisation"),
    log:
        "logs/localisation_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/localisation_table.py"


rule localisation_figures:
    input:
        paths.LOCALISATION_TABLE,
    output:
        grid=report(paths.LOCALISATION_GRID_FIGURE, caption="../report/localisation_grid.rst", category="Localisation"),
        lung=report(paths.LOCALISATION_LUNG_FIGURE, caption="../report/localisation_lung.rst", category="Localisation"),
    log:
        "logs/localisation_figures.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/localisation_figures.py"


rule saliency_report:
    input:
        maps=localisation.saliency_files(LOCALISATION_MODELS, "maps"),
        shares=localisation.saliency_files(LOCALISATION_MODELS, "shares"),
    output:
        table=report(paths.SALIENCY_TABLE, caption="../report/saliency_table.rst", category="Localisation"),
        figure=report(paths.SALIENCY_FIGURE, caption="../report/saliency.rst", category="Localisation"),
    params:
        runs=[[base.path, base.train] for base in localisation.saliency_runs(LOCALISATION_MODELS)],
    log:
        "logs/saliency_report.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/saliency_report.py"
