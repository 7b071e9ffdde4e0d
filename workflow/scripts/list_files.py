"""Job: list a dataset's input files, give each its pseudonym and ingestion shard."""

from readrace.data.cache import write_units
from readrace.ingest.adapters import make_adapter
from readrace.ingest.listing import list_files, write_listing
from readrace.logs import job_logging

# The adapter's errors name source files: their message goes to the private log only.
with job_logging(snakemake.log[0], private_log=snakemake.log.private) as log:
    dataset = snakemake.params.dataset
    adapter = make_adapter(dataset["adapter"], dataset["root"], dataset["options"])
    files = list_files(adapter, dataset["modality"], dataset["shards"], snakemake.params.salt)
    write_listing(files, snakemake.output.private, snakemake.output.files)
    write_units(snakemake.output.units, adapter.units())
    log.info("%d files in %d shard(s)", len(files), dataset["shards"])
