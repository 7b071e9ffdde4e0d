"""Job: the index of a dataset's ingestion shards, which the gather job reads."""

from readrace.ingest.gather import write_shard_index
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    shards = list(zip(snakemake.input.rows, snakemake.input.quarantine, snakemake.input.images))
    index = write_shard_index(shards, snakemake.output[0])
    log.info("%d shards, %d images", len(index), index["n_images"].sum())
