"""Job: the segmentation quality table (patient-bootstrap intervals) and the implausible masks."""

import numpy as np
import pandas as pd

from readrace.logs import job_logging
from readrace.segmentation.quality import implausible_masks, segmentation_table

with job_logging(snakemake.log[0]) as log:
    sources, evaluation = snakemake.params.sources, snakemake.params.evaluation
    qualities, implausible = {}, []
    for name, quality_path, masks_path, manifest_path in zip(snakemake.params.datasets, snakemake.input.quality,
                                                             snakemake.input.masks, snakemake.input.manifests):
        source = sources[name]
        quality = pd.read_csv(quality_path, dtype={"image_id": str, "patient_id": str, "series_id": str})
        if source["truth"]:
            qualities[name] = (source["method"], source["held_out"], quality)
        implausible.append(implausible_masks(name, source["method"], source["modality"], quality,
                                             np.load(masks_path, mmap_mode="r"), pd.read_parquet(manifest_path),
                                             source["quality"]))
    table = segmentation_table(qualities, evaluation["bootstrap"], evaluation["seed"], evaluation["confidence"])
    table.to_csv(snakemake.output.table, index=False)
    implausible = pd.concat(implausible, ignore_index=True)
    implausible.to_csv(snakemake.output.implausible, index=False)
    log.info("%d table rows; %d implausible masks", len(table), len(implausible))
