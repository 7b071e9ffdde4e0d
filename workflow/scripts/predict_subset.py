"""Job: one image model's predictions on another split of its train dataset (a clinical
model's validation split, where the audit's thresholds are chosen)."""

import torch

from readrace.config import execution_settings
from readrace.data.subsets import Subset
from readrace.evaluation.predictions import write_predictions
from readrace.experiments import model_of
from readrace.logs import job_logging
from readrace.training.image_models import predict_job

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    inputs = snakemake.input
    predictions = predict_job(
        inputs.model, inputs.manifest, inputs.cache, inputs.descriptor,
        model_id=snakemake.params.model,
        test_dataset=model_of(snakemake.params.model).train,
        execution=execution_settings(snakemake.config),
        test=Subset.of(snakemake.params.subset),
    )
    write_predictions(predictions, snakemake.output[0], snakemake.params.schema)
    log.info("%d %s predictions", len(predictions.table), snakemake.params.subset)
