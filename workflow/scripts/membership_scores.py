"""Job: the logits and margins of every shadow model of an audit on every pool and population
record, under every view (the Parquet the attacks re-run from)."""

import numpy as np
import pandas as pd
import torch

from readrace.audits.shadow import score_records
from readrace.config import execution_settings
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    execution = execution_settings(snakemake.config)
    table = score_records(
        list(snakemake.input.models),
        pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"),
        n_models=int(w.n_models),
        seed=int(w.seed),
        pool=list(snakemake.params.pool),
        views=list(snakemake.params.views),
        execution=execution,
        batch_size=execution["predict_batch_size"],
    )
    table.to_parquet(snakemake.output[0], index=False)
    log.info("%d scores (%d records x %d models x %d views)", len(table), table["image_id"].nunique(),
             table["shadow"].nunique(), table["view"].nunique())
