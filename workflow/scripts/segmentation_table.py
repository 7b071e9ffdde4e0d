"""Job: per-image mask quality, the segmentation table (patient-bootstrap intervals) and
the implausible masks, for every segmented dataset."""

import numpy as np
import pandas as pd

from readrace.logs import job_logging
from readrace.segmentation.masks import read_masks
from readrace.segmentation.quality import implausible_masks, mask_quality, segmentation_table

with job_logging(snakemake.log[0]) as log:
    sources, evaluation = snakemake.params.sources, snakemake.params.evaluation
    truths = iter(snakemake.input.truths)
    qualities, per_image, implausible = {}, [], []
    for name, masks_path, manifest_path in zip(snakemake.params.datasets, snakemake.input.masks,
                                               snakemake.input.manifests):
        source = sources[name]
        manifest = pd.read_parquet(manifest_path)
        masks = np.load(masks_path, mmap_mode="r")
        truth = read_masks(next(truths), masks, truth=True) if source["truth"] else None
        quality = mask_quality(manifest, masks, truth, source["held_out"], source["quality"]["min_lung_fraction"])
        if truth is not None:
            qualities[name] = (source["method"], source["held_out"], quality)
        per_image.append(quality.assign(dataset=name, method=source["method"]))
        implausible.append(implausible_masks(name, source["method"], source["modality"], quality, masks, manifest,
                                             source["quality"]))
    table = segmentation_table(qualities, evaluation["bootstrap"], evaluation["seed"], evaluation["confidence"])
    table.to_csv(snakemake.output.table, index=False)
    pd.concat(per_image, ignore_index=True).to_csv(snakemake.output.quality, index=False)
    implausible = pd.concat(implausible, ignore_index=True)
    implausible.to_csv(snakemake.output.implausible, index=False)
    log.info("%d table rows; %d implausible masks", len(table), len(implausible))
