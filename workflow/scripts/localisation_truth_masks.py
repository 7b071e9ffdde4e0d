"""Job: the stand-in lung-mask cache of a synthetic dataset, from its ground truth."""

import numpy as np
import pandas as pd

from readrace.localisation.truth_masks import truth_mask_cache
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    cohort = snakemake.input.cohort
    masks = truth_mask_cache(
        pd.read_parquet(snakemake.input.manifest, columns=["image_id", "cache_index"]),
        pd.read_csv(snakemake.input.sources, dtype=str),
        pd.read_csv(f"{cohort}/truth.csv", dtype=str),
        f"{cohort}/masks",
        n_rows=len(np.load(snakemake.input.cache, mmap_mode="r")),
        size=snakemake.params.size,
    )
    np.save(snakemake.output[0], masks)
    log.info("%d masks, mean lung fraction %.3f", len(masks), masks.mean())
