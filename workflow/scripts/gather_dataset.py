"""Job: gather the shards into the dataset's manifest, quarantine and cache."""

import pandas as pd

from readrace.ingest.gather import gather_shards
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    shards = list(zip(snakemake.input.rows, snakemake.input.quarantine, snakemake.input.images))
    manifest = gather_shards(
        pd.read_csv(snakemake.input.files, dtype={"path": str}),
        shards,
        snakemake.params.split,
        snakemake.params.manifest_schema,
        snakemake.output.manifest,
        snakemake.output.quarantine,
        snakemake.output.cache,
        snakemake.output.summary,
    )
    log.info("manifest: %d images of %d patients", len(manifest), manifest["patient_id"].nunique())
