"""Job: generate one synthetic dataset (DICOM files and tables)."""

from readrace.logs import job_logging
from readrace.synthetic import CohortSpec, generate_cohort

with job_logging(snakemake.log[0]):
    dataset = snakemake.params.dataset
    spec = CohortSpec.from_options(dataset["modality"], dataset["options"])
    generate_cohort(spec, snakemake.output[0])
