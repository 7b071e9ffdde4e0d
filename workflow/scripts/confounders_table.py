"""Job: the confounders table (CSV, Markdown like the paper's Table 2) and the forest plot."""

from pathlib import Path

from readrace.confounders.tables import gather_confounders, plot_strata, render_markdown
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    table = gather_confounders(snakemake.input.scores, snakemake.input.image_scores, snakemake.input.strata)
    table.to_csv(snakemake.output.csv, index=False)
    Path(snakemake.output.markdown).write_text(render_markdown(table))
    plot_strata(table, snakemake.output.figure)
