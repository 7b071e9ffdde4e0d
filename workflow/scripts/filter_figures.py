"""Job: AUC against filter diameter (Figure 1) and sample filtered images (Figure 2)."""

import numpy as np
import pandas as pd

from readrace.evaluation.figures import plot_filter_auc, plot_filter_samples
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    plot_filter_auc(pd.read_csv(snakemake.input.table), snakemake.output.auc)
    manifest = pd.read_parquet(snakemake.input.manifest)
    test = manifest[manifest["split"] == "test"].head(snakemake.params.n_samples)
    cache = np.load(snakemake.input.cache, mmap_mode="r")
    images = np.asarray(cache[np.sort(test["cache_index"].to_numpy())], dtype=np.float32)
    plot_filter_samples(images, snakemake.params.perturbations, snakemake.output.samples)
