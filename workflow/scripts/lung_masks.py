"""Job: a dataset's lung masks (U-Net, Hounsfield units or lungmask) on its cache grid, row for row."""

import numpy as np
import pandas as pd
import torch

from readrace.config import execution_settings
from readrace.logs import job_logging
from readrace.segmentation.ct import ct_lung_masks
from readrace.segmentation.masks import check_masks, write_masks
from readrace.segmentation.unet import predict_masks

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    params = snakemake.params.segmentation
    images = np.load(snakemake.input.cache, mmap_mode="r")
    if params["method"] == "unet":
        execution = execution_settings(snakemake.config)
        masks = predict_masks(snakemake.input.model, images, params["settings"], execution["device"],
                              execution["predict_batch_size"])
    elif params["method"] == "lungmask":
        from readrace.segmentation.lungmask import lungmask_masks

        masks = lungmask_masks(pd.read_parquet(snakemake.input.manifest), images, params["window"],
                               params["settings"], execution_settings(snakemake.config)["device"])
    else:
        masks = ct_lung_masks(pd.read_parquet(snakemake.input.manifest), images, params["window"], params["settings"])
    check_masks(masks, images, snakemake.output[0])
    write_masks(snakemake.output[0], masks)
    log.info("%s masks of %d images, mean lung fraction %.3f", params["method"], len(masks), float(masks.mean()))
