# One race classifier per experiment coordinate: {train}/{arch}/{perturbation}/seed{seed}.
# checkpoint.pt, written every epoch beside the model, is not an output: a job killed by a
# time limit or a preemption resumes from it when it is run again.


rule train_model:
    input:
        manifest="results/{train}/manifest.parquet",
        cache="results/{train}/cache/images.npy",
    output:
        model="results/models/{train}/{arch}/{perturbation}/seed{seed}/model.pt",
        log_csv="results/models/{train}/{arch}/{perturbation}/seed{seed}/train_log.csv",
    params:
        training=training_params,
        modality=train_modality,
    log:
        "logs/train_model/{train}/{arch}/{perturbation}/seed{seed}.log",
    threads: config["training"]["threads"]
    resources:
        mem_mb=per_attempt(16000),
        runtime=per_attempt(240),
        gpu=config["training"]["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/train_model.py"
