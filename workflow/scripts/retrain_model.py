"""Job: retrain a race classifier on a subset (confounders: nofinding, equal, one manufacturer) and write the
distributions it was trained on (sampler.csv: target, before and after resampling)."""

import json

import numpy as np
import pandas as pd
import torch

from readrace.config import execution_settings
from readrace.confounders.acquisition import manufacturer_rows
from readrace.confounders.sampler import EqualDistribution, achieved_distribution, sampler_of
from readrace.experiments.confounders import RetrainModel
from readrace.logs import job_logging
from readrace.tasks import Task
from readrace.training.image_models import train_image_model

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    model = RetrainModel(w.train, w.arch, w.subset, int(w.seed))
    task = Task.from_dict(snakemake.params.task)
    manifest = pd.read_parquet(snakemake.input.manifest)
    descriptor = json.loads(open(snakemake.input.descriptor).read())
    manufacturer = snakemake.params.manufacturer
    if manufacturer is not None:
        # A name the manifest lacks is an error naming the manufacturers it has.
        for split in ("train", "validation"):
            manufacturer_rows(manifest, split, manufacturer, dataset=w.train)
    train = model.split_subset("train", manufacturer)
    sampler = sampler_of(snakemake.params.sampler, int(w.seed)) if model.resampled else None
    result = train_image_model(
        manifest,
        np.load(snakemake.input.cache, mmap_mode="r"),
        dataset=w.train,
        task=task,
        arch=w.arch,
        perturbation="none",
        seed=int(w.seed),
        training=snakemake.params.training,
        execution=execution_settings(snakemake.config),
        out_dir=snakemake.output.model.rsplit("/", 1)[0],
        cache_digest=descriptor["cache"]["sha256"],
        train=train,
        validation=model.split_subset("validation", manufacturer),
        resample=sampler,
    )
    rows = task.rows(train.select(manifest))
    # The same seeded draw the training used; without a sampler, the distributions trained on.
    described = sampler or EqualDistribution()
    after = sampler.resample(rows) if sampler else rows
    achieved_distribution(rows, after, described).to_csv(snakemake.output.sampler, index=False)
    log.info("%s: best validation score %.3f at epoch %d", model.path, result.best_val_auc, result.best_epoch)
