"""Job: train the lung U-Net on the union of its train datasets."""

import json

import numpy as np
import pandas as pd
import torch

from readrace.config import execution_settings
from readrace.logs import job_logging
from readrace.segmentation.masks import read_masks
from readrace.segmentation.unet import train_unet, training_data

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    inputs = snakemake.input
    datasets, digests = [], []
    for name, manifest, cache, descriptor, truth in zip(snakemake.wildcards.sources.split("+"), inputs.manifests,
                                                        inputs.caches, inputs.descriptors, inputs.truths):
        images = np.load(cache, mmap_mode="r")
        datasets.append((name, pd.read_parquet(manifest), images, read_masks(truth, images, truth=True)))
        digests.append(json.loads(open(descriptor).read())["cache"]["sha256"])
    result = train_unet(training_data(datasets), snakemake.params.unet, int(snakemake.wildcards.seed),
                        execution_settings(snakemake.config), snakemake.output.model.rsplit("/", 1)[0], digests)
    log.info("%s: best validation Dice %.3f at epoch %d", result.origin, result.best_val_auc, result.best_epoch)
