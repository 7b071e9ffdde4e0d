"""Job: every robustness audit in one table, the smallest-epsilon comparison, the curves."""

from readrace.audits.reports import gather_with_coordinates, plot_robustness
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    coordinates = snakemake.params.coordinates
    summary = gather_with_coordinates(snakemake.input.summaries, coordinates)
    summary.to_csv(snakemake.output.csv, index=False)
    gather_with_coordinates(snakemake.input.min_epsilon, coordinates).to_csv(snakemake.output.min_epsilon, index=False)
    plot_robustness(summary, snakemake.output.figure)
