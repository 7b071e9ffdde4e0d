"""Job: decode, join, filter and preprocess the files of one ingestion shard."""

from readrace.ingest.adapters import make_adapter
from readrace.ingest.listing import read_listing
from readrace.ingest.shard import ingest_shard, write_shard
from readrace.logs import job_logging

with job_logging(snakemake.log[0], private_log=snakemake.log.private) as log:
    dataset = snakemake.params.dataset
    shard = int(snakemake.wildcards.shard)
    files = read_listing(snakemake.input.files)
    paths = files.loc[files["shard"] == shard, "path"].tolist()
    adapter = make_adapter(dataset["adapter"], dataset["root"], dataset["options"])
    result = ingest_shard(
        adapter,
        paths,
        dataset["modality"],
        dataset["preprocess"],
        snakemake.params.salt,
        description=f"ingest {snakemake.wildcards.dataset} shard {shard}",
        value_ranges=snakemake.params.value_ranges,
        mask_set=dataset.get("mask_set", False),
    )
    write_shard(result, snakemake.output.rows, snakemake.output.quarantine, snakemake.output.images)
    log.info("%d files: %d images kept, %d files quarantined", len(paths), len(result.rows), len(result.quarantine))
