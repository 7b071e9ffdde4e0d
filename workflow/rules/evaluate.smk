# Predictions on every test dataset of the model's modality, scores, and the Table-3 table.


rule predict:
    input:
        model="results/models/{train}/{arch}/{perturbation}/seed{seed}/model.pt",
        manifest="results/{test}/manifest.parquet",
        cache="results/{test}/cache/images.npy",
    output:
        "results/predictions/{train}/{arch}/{perturbation}/seed{seed}/{test}.parquet",
    params:
        modality=train_modality,
        device=config["training"]["device"],
        batch_size=config["training"]["predict_batch_size"],
    log:
        "logs/predict/{train}/{arch}/{perturbation}/seed{seed}/{test}.log",
    threads: config["training"]["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
        gpu=config["training"]["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/predict.py"


rule score:
    input:
        "results/predictions/{train}/{arch}/{perturbation}/seed{seed}/{test}.parquet",
    output:
        "results/scores/{train}/{arch}/{perturbation}/seed{seed}/{test}.csv",
    params:
        modality=train_modality,
        evaluation=config["evaluation"],
    log:
        "logs/score/{train}/{arch}/{perturbation}/seed{seed}/{test}.log",
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(30),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/score.py"


rule race_detection_table:
    input:
        score_files(),
    output:
        csv=report(
            "results/tables/race_detection.csv",
            caption="../report/race_detection.rst",
            category="Race detection",
        ),
        markdown="results/tables/race_detection.md",
    params:
        modalities={name: dataset["modality"] for name, dataset in DATASETS.items()},
    log:
        "logs/race_detection_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/race_detection_table.py"
