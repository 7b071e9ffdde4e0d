"""Job: every clinical model's internal AUC per label."""

from readrace.audits.reports import clinical_table
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    clinical_table(snakemake.input).to_csv(snakemake.output[0], index=False)
