# Kind localisation (readrace.experiments.localisation): lung / non-lung, the 3x3 grid and
# saliency. Its models are race models: the full model of race_detection (test-time
# protocol) or one trained under the perturbation by train_model (retrain protocol); their
# predictions come from predict and their scores from score (evaluate.smk). Here: the
# stand-in lung masks, Grad-CAM of the full models, the table and the figures.

LOCALISATION_MODELS = MODELS[localisation.NAME]
SALIENCY_DIR = paths.SALIENCY_DIR.format(model=race_detection.RaceDetectionModel.PATH.format(
    train="{train}", arch="{arch}", perturbation="none", seed="{seed}"), test="{test}")


def preprocess_size(wildcards):
    return DATASETS[wildcards.dataset]["preprocess"]["size"]


def saliency_lung_masks(wildcards):
    """The test dataset's lung masks, where its modality has them (shares inside the lungs)."""
    if DATASETS[wildcards.test]["modality"] in localisation.MASKED_MODALITIES:
        return {"lung": lung_masks(wildcards.test)}
    return {}


# The stand-in for the segmentation stage's masks (see LUNG_MASKS in common.smk): the
# synthetic cohort's ground truth, found through the private map. Writes no identifier.
rule localisation_truth_masks:
    input:
        manifest="results/{dataset}/manifest.parquet",
        cache="results/{dataset}/cache/images.npy",
        sources="private/{dataset}/sources.csv",
        cohort="data/synthetic/{dataset}",
    output:
        LUNG_MASKS,
    params:
        size=preprocess_size,
    log:
        "logs/localisation_truth_masks/{dataset}.log",
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(30),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/localisation_truth_masks.py"


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
