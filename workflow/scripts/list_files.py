"""Job: list a dataset's input files and give each its ingestion shard."""

from readrace.ingest.adapters import make_adapter
from readrace.ingest.listing import list_files
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    dataset = snakemake.params.dataset
    adapter = make_adapter(dataset["adapter"], snakemake.params.root, dataset["options"])
    files = list_files(adapter, dataset["modality"], dataset["shards"])
    files.to_csv(snakemake.output[0], index=False)
    log.info("%d files in %d shard(s)", len(files), dataset["shards"])
