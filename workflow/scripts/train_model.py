"""Job: train the race classifier of one experiment coordinate."""

import json

import numpy as np
import pandas as pd
import torch

from readrace.config import execution_settings
from readrace.logs import job_logging
from readrace.tasks import Task
from readrace.training.image_models import train_image_model

with job_logging(snakemake.log[0]) as log:
    execution = execution_settings(snakemake.config)
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    descriptor = json.loads(open(snakemake.input.descriptor).read())
    result = train_image_model(
        pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"),
        dataset=w.train,
        task=Task.from_dict(snakemake.params.task),
        arch=w.arch,
        perturbation=w.perturbation,
        seed=int(w.seed),
        training=snakemake.params.training,
        execution=execution,
        out_dir=snakemake.output.model.rsplit("/", 1)[0],
        cache_digest=descriptor["cache"]["sha256"],
        masks=np.load(snakemake.input.masks, mmap_mode="r") if "masks" in snakemake.input.keys() else None,
    )
    log.info("%s: best validation score %.3f at epoch %d", result.origin, result.best_val_auc, result.best_epoch)
