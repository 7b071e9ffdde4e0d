"""Job: the class probabilities of one image model on one test dataset."""

import torch

from readrace.config import execution_settings
from readrace.evaluation.predictions import write_predictions
from readrace.logs import job_logging
from readrace.training.image_models import predict_job

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    inputs = snakemake.input
    predictions = predict_job(
        inputs.model, inputs.manifest, inputs.cache, inputs.descriptor,
        model_id=snakemake.wildcards.model,
        test_dataset=snakemake.wildcards.test,
        execution=execution_settings(snakemake.config),
        masks_path=inputs.masks if "masks" in inputs.keys() else None,
    )
    write_predictions(predictions, snakemake.output[0], snakemake.params.schema)
    log.info("%d predictions", len(predictions.table))
