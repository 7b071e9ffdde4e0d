"""Job: train one shadow model of a membership audit (its half of the pool's patients)."""

import json

import numpy as np
import pandas as pd
import torch

from readrace.audits.shadow import train_shadow
from readrace.config import execution_settings
from readrace.logs import job_logging
from readrace.tasks import Task

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    descriptor = json.loads(open(snakemake.input.descriptor).read())
    result, dp = train_shadow(
        pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"),
        dataset=w.train,
        task=Task.from_dict(snakemake.params.task),
        arch=w.arch,
        n_models=int(w.n_models),
        shadow=int(w.shadow),
        seed=int(w.seed),
        pool=list(snakemake.params.pool),
        training=snakemake.params.training,
        dp=snakemake.params.dp,
        execution=execution_settings(snakemake.config),
        out_dir=snakemake.output.model.rsplit("/", 1)[0],
        cache_digest=descriptor["cache"]["sha256"],
    )
    log.info("%s: %d epochs, last-epoch weights; DP %s", result.origin, result.epochs_completed, dp or "off")
