"""Job: per-image mask statistics, and Dice / HD95 against the ground truth where it exists."""

import numpy as np
import pandas as pd

from readrace.logs import job_logging
from readrace.segmentation.masks import read_masks
from readrace.segmentation.quality import mask_quality

with job_logging(snakemake.log[0]) as log:
    params = snakemake.params.quality
    manifest = pd.read_parquet(snakemake.input.manifest)
    masks = np.load(snakemake.input.masks, mmap_mode="r")
    truth = read_masks(snakemake.input.truth, masks, truth=True) if "truth" in snakemake.input.keys() else None
    quality = mask_quality(manifest, masks, truth, params["held_out"], params["min_lung_fraction"])
    quality.to_csv(snakemake.output[0], index=False)
    log.info("%d images, %d scored, mean Dice %.3f", len(quality), int(quality["scored"].sum()),
             quality.loc[quality["scored"], "dice"].mean())
