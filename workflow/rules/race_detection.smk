# Kind race_detection (readrace.experiments.race_detection): one race classifier per
# coordinate, race_detection/{train}/{arch}/{perturbation}/seed{seed}; its predictions on
# every dataset of its group come from evaluate.smk; here also the Table-3 table and the
# filter figures. checkpoint.pt, written every epoch beside the model, is not an output: a
# job killed by a time limit or a preemption resumes from it when it is run again.

rule train_model:
    input:
        unpack(training_masks),
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
        descriptor="results/{train}/dataset.json",
    output:
        model=f"{RACE_MODEL_DIR}/{paths.MODEL_FILE}",
        log_csv=f"{RACE_MODEL_DIR}/{paths.TRAIN_LOG_FILE}",
    params:
        training=config["training"],
        task=race_task,
    log:
        "logs/train_model/race_detection/{train}/{arch}/{perturbation}/seed{seed}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(16000),
        runtime=per_attempt(240),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/train_model.py"


rule race_detection_table:
    input:
        race_detection.score_files(RACE_MODELS, config),
    output:
        csv=report(
            paths.RACE_DETECTION_TABLE,
            caption="../report/race_detection.rst",
            category="Race detection",
        ),
        markdown=paths.RACE_DETECTION_MARKDOWN,
    params:
        modalities={name: dataset["modality"] for name, dataset in DATASETS.items()},
    log:
        "logs/race_detection_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/race_detection_table.py"


rule filter_figures:
    input:
        **race_detection.filter_figure_inputs(RACE_MODELS),
    output:
        auc=report(
            paths.FILTER_AUC_FIGURE,
            caption="../report/filter_auc.rst",
            category="Frequency filters",
        ),
        samples=report(
            paths.FILTER_SAMPLES_FIGURE,
            caption="../report/filter_samples.rst",
            category="Frequency filters",
        ),
    params:
        perturbations=race_detection.filter_sample_ids(RACE_MODELS),
        n_samples=3,
    log:
        "logs/filter_figures.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/filter_figures.py"
