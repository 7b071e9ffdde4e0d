"""Job: predict the race probabilities of one model on one test dataset."""

import numpy as np
import pandas as pd
import torch

from readrace.experiments import Coordinate
from readrace.logs import job_logging
from readrace.experiments.race_detection import predict_race

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    predictions = predict_race(
        snakemake.input.model,
        pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"),
        snakemake.params.modality,
        Coordinate(w.train, w.arch, w.perturbation, int(w.seed)),
        w.test,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
    )
    predictions.to_parquet(snakemake.output[0], index=False)
    log.info("%d predictions", len(predictions))
