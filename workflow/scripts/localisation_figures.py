"""Job: the grid heat maps and the lung / non-lung bars of the localisation table."""

import pandas as pd

from readrace.localisation.report import plot_grid, plot_lung
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    table = pd.read_csv(snakemake.input[0])
    plot_grid(table, snakemake.output.grid)
    plot_lung(table, snakemake.output.lung)
