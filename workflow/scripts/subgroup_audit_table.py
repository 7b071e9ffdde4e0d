"""Job: the subgroup audits of every clinical model in one table, and the figure of the gaps."""

from readrace.audits.reports import gather, plot_subgroup_gaps
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    table = gather(snakemake.input)
    table.to_csv(snakemake.output.csv, index=False)
    plot_subgroup_gaps(table, snakemake.output.figure)
