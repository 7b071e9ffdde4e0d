"""Job: Grad-CAM of a full race model on the test split of one dataset: mean maps per class,
shares of saliency per region, and each test image's most salient region."""

import numpy as np
import pandas as pd
import torch

from readrace.config import execution_settings
from readrace.localisation.saliency import saliency_of_model, target_layer
from readrace.logs import job_logging
from readrace.tasks import Task
from readrace.training.device import resolve_device
from readrace.training.image_models import TEST
from readrace.training.inference import load_model

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    model, meta = load_model(snakemake.input.model)
    task = Task.from_dict(meta["task"])
    rows = task.rows(TEST.select(pd.read_parquet(snakemake.input.manifest)))
    lung = np.load(snakemake.input.lung, mmap_mode="r") if "lung" in snakemake.input.keys() else None
    result = saliency_of_model(
        model, meta["arch"], np.load(snakemake.input.cache, mmap_mode="r"), rows["cache_index"].to_numpy(),
        rows["label"].to_numpy(), list(task.classes), lung=lung, fraction=snakemake.params.fraction,
        device=resolve_device(execution_settings(snakemake.config)["device"]),
    )
    np.savez(snakemake.output.maps, mean_maps=result.mean_maps, mean_images=result.mean_images,
             classes=np.array(task.classes))
    result.shares.to_csv(snakemake.output.shares, index=False)
    np.save(snakemake.output.masks, result.salient)
    log.info("Grad-CAM on %s; %d test images; mean salient box %.3f of the image",
             target_layer(model, meta["arch"], np.load(snakemake.input.cache, mmap_mode="r").shape[-1])[0], len(rows),
             result.salient[rows["cache_index"].to_numpy()].mean())
