"""Job: write the configuration of this run beside its results (secrets redacted)."""

from readrace.logs import job_logging
from readrace.provenance import write_config

with job_logging(snakemake.log[0]) as log:
    write_config(snakemake.params.config, snakemake.output[0])
    log.info("wrote %s", snakemake.output[0])
