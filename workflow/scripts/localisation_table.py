"""Job: gather the localisation models' score files into the long localisation table."""

from readrace.localisation.report import localisation_table
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    localisation_table(snakemake.input).to_csv(snakemake.output[0], index=False)
