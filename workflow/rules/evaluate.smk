# Evaluation shared by every kind: predictions of an image model on a test dataset, and the
# scores of any predictions file (readrace.evaluation.predictions is the contract between
# the two). {model} is a model id, a coordinate's path; its weights are its own model.pt unless
# its coordinate names another model's (readrace.experiments.weights_of), and a masked
# perturbation in effect at test time brings its masks.


rule predict:
    input:
        unpack(prediction_masks),
        model=prediction_weights,
        manifest="results/{test}/manifest.parquet",
        cache="results/{test}/cache/images.npy",
        descriptor="results/{test}/dataset.json",
    output:
        paths.PREDICTIONS,
    params:
        schema=PREDICTIONS_SCHEMA,
    log:
        "logs/predict/{model}/{test}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/predict.py"


rule score:
    input:
        paths.PREDICTIONS,
    output:
        paths.SCORES,
    params:
        evaluation=config["evaluation"],
        schema=PREDICTIONS_SCHEMA,
    log:
        "logs/score/{model}/{test}.log",
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(30),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/score.py"
