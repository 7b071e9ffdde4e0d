"""Job: the class probabilities of one image model on one test dataset."""

import json

import numpy as np
import pandas as pd
import torch

from readrace.config import execution_settings
from readrace.evaluation.predictions import write_predictions
from readrace.experiments import model_of, perturbation_at_test
from readrace.logs import job_logging
from readrace.training.image_models import TEST, predict_image_model

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    model = model_of(w.model)
    descriptor = json.loads(open(snakemake.input.descriptor).read())
    predictions = predict_image_model(
        snakemake.input.model,
        pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"),
        keys={"kind": model.kind, "model": w.model, **model.columns, "test_dataset": w.test},
        units=descriptor["units"],
        execution=execution_settings(snakemake.config),
        perturbation=perturbation_at_test(w.model),
        masks=np.load(snakemake.input.masks, mmap_mode="r") if "masks" in snakemake.input.keys() else None,
        # A coordinate trained on a subset (confounders' nofinding) is tested on its own.
        test=getattr(model, "test_subset", TEST),
    )
    write_predictions(predictions, snakemake.output[0], snakemake.params.schema)
    log.info("%d predictions", len(predictions.table))
