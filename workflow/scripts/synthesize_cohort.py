"""Job: generate one synthetic dataset (DICOM files and tables)."""

from readrace.logs import job_logging
from readrace.synthetic import CohortSpec, generate_cohort

with job_logging(snakemake.log[0]):
    cohort = snakemake.params.cohort
    spec = CohortSpec.from_options(cohort["modality"], cohort["options"])
    generate_cohort(spec, snakemake.output[0])
