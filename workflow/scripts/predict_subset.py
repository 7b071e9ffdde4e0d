"""Job: one image model's predictions on another split of its train dataset (a clinical
model's validation split, where the audit's thresholds are chosen)."""

import json

import numpy as np
import pandas as pd
import torch

from readrace.config import execution_settings
from readrace.data.subsets import Subset
from readrace.evaluation.predictions import write_predictions
from readrace.experiments import model_of
from readrace.logs import job_logging
from readrace.training.image_models import predict_image_model

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    model = model_of(snakemake.params.model)
    descriptor = json.loads(open(snakemake.input.descriptor).read())
    predictions = predict_image_model(
        snakemake.input.model,
        pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"),
        keys={"kind": model.kind, "model": model.path, **model.columns, "test_dataset": model.train},
        units=descriptor["units"],
        execution=execution_settings(snakemake.config),
        test=Subset.of(snakemake.params.subset),
    )
    write_predictions(predictions, snakemake.output[0], snakemake.params.schema)
    log.info("%d %s predictions", len(predictions.table), snakemake.params.subset)
