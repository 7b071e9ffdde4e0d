"""Job: the confounders table (CSV, Markdown like the paper's Table 2), the coverage of the
patient variables, and the forest plot."""

from pathlib import Path

import pandas as pd

from readrace.confounders.tables import gather_confounders, plot_strata, render_markdown
from readrace.confounders.variables import variable_coverage
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    table = gather_confounders(snakemake.input.scores, snakemake.input.image_scores, snakemake.input.strata,
                               snakemake.params.manufacturers)
    table.to_csv(snakemake.output.csv, index=False)
    # results/{dataset}/manifest.parquet: the dataset is the folder.
    coverage = pd.concat([variable_coverage(pd.read_parquet(path), Path(path).parent.name)
                          for path in snakemake.input.manifests], ignore_index=True)
    coverage.to_csv(snakemake.output.variables, index=False)
    Path(snakemake.output.markdown).write_text(render_markdown(table, coverage))
    plot_strata(table, snakemake.output.figure)
