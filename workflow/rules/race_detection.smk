# Kind race_detection (readrace.experiments.race_detection): one race classifier per
# coordinate, race_detection/{train}/{arch}/{perturbation}/seed{seed}; its predictions on
# every dataset of its group come from evaluate.smk; here also the Table-3 table and the
# filter figures. checkpoint.pt, written every epoch beside the model, is not an output: a
# job killed by a time limit or a preemption resumes from it when it is run again.

from readrace.experiments import race_detection

RACE_MODELS = MODELS[race_detection.NAME]
RACE_MODEL_DIR = paths.model_dir(race_detection.RaceDetectionModel.PATH)


def race_task(wildcards):
    return race_detection.task(config, wildcards.train).to_dict()


def filter_figure_inputs(wildcards):
    """The table, and the cache of the first filtered dataset for the sample images."""
    dataset = race_detection.filter_models(RACE_MODELS)[0].train
    return {
        "table": paths.RACE_DETECTION_TABLE,
        "manifest": paths.dataset_file(paths.MANIFEST, dataset),
        "cache": paths.dataset_file(paths.CACHE, dataset),
    }


def filter_sample_ids(wildcards):
    """The filter ids to show, low-pass then high-pass, by diameter."""
    ids = {m.perturbation for m in race_detection.filter_models(RACE_MODELS)}
    return sorted(ids, key=lambda pid: (not pid.startswith("lpf"), int(pid.split("-d")[1])))


rule train_model:
    input:
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
        unpack(filter_figure_inputs),
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
        perturbations=filter_sample_ids,
        n_samples=3,
    log:
        "logs/filter_figures.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/filter_figures.py"
