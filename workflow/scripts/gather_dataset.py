"""Job: gather the shards into the dataset's manifest, quarantine, cache, summary and
descriptor, and the private map back to the source files."""

from readrace.data.cache import read_units
from readrace.ingest.gather import gather_shards, read_shard_index
from readrace.ingest.listing import read_listing
from readrace.logs import job_logging

with job_logging(snakemake.log[0], private_log=snakemake.log.private) as log:
    output = snakemake.output
    manifest = gather_shards(
        read_listing(snakemake.input.files),
        read_shard_index(snakemake.input.shards),
        snakemake.params.split,
        snakemake.params.manifest_schema,
        modality=snakemake.params.modality,
        units=read_units(snakemake.input.units),
        manifest_path=output.manifest,
        quarantine_path=output.quarantine,
        cache_path=output.cache,
        summary_path=output.summary,
        descriptor_path=output.descriptor,
        sources_path=output.sources,
        private_quarantine_path=output.private_quarantine,
        listing_path=snakemake.input.files,
        mask_set=snakemake.params.mask_set,
    )
    log.info("manifest: %d images of %d patients", len(manifest), manifest["patient_id"].nunique())
