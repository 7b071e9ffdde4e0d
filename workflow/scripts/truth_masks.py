"""Job: a dataset's ground-truth lung masks on its cache grid, row for row."""

import numpy as np
import pandas as pd

from readrace.ingest.adapters import make_adapter
from readrace.logs import job_logging
from readrace.segmentation.masks import MaskError
from readrace.segmentation.truth import truth_masks

with job_logging(snakemake.log[0], private_log=snakemake.log.private) as log:
    dataset = snakemake.params.dataset
    adapter = make_adapter(dataset["adapter"], dataset["root"], dataset["options"])
    sources = pd.read_csv(snakemake.input.sources, dtype={"path": str}, keep_default_na=False)
    images = np.load(snakemake.input.cache, mmap_mode="r")
    if len(sources) != len(images):
        raise MaskError(f"{snakemake.input.sources}: {len(sources)} rows for a cache of {len(images)}")
    truth_masks(adapter, sources, images.shape[1], snakemake.output[0])
