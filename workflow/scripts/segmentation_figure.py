"""Job: lung masks drawn over sample images of every segmented dataset."""

import numpy as np

from readrace.logs import job_logging
from readrace.segmentation.figures import plot_mask_overlays

with job_logging(snakemake.log[0]):
    panels = [(name, np.load(cache, mmap_mode="r"), np.load(masks, mmap_mode="r"))
              for name, cache, masks in zip(snakemake.params.datasets, snakemake.input.caches, snakemake.input.masks)]
    plot_mask_overlays(panels, snakemake.output[0], snakemake.params.n_samples, snakemake.params.seed)
