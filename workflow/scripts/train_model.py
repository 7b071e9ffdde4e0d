"""Job: train the race classifier of one experiment coordinate."""

import numpy as np
import pandas as pd
import torch

from readrace.experiments import Coordinate
from readrace.logs import job_logging
from readrace.experiments.race_detection import train_race_model

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    coordinate = Coordinate(w.train, w.arch, w.perturbation, int(w.seed))
    result = train_race_model(
        pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"),
        snakemake.params.modality,
        coordinate,
        snakemake.params.training,
        out_dir=snakemake.output.model.rsplit("/", 1)[0],
    )
    log.info("best validation macro AUC %.3f at epoch %d", result.best_val_auc, result.best_epoch)
