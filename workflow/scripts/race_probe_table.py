"""Job: the race probes' AUCs next to the race models' own, and the PCA figure."""

from readrace.audits.reports import plot_probe_projections, probe_table
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    probe_table(snakemake.input.scores).to_csv(snakemake.output.csv, index=False)
    plot_probe_projections(list(snakemake.input.projections), snakemake.output.figure)
