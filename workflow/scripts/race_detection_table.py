"""Job: gather every score file into the race-detection table (CSV and Markdown)."""

from pathlib import Path

from readrace.logs import job_logging
from readrace.evaluation.tables import gather_scores, render_markdown

with job_logging(snakemake.log[0]):
    table = gather_scores(snakemake.input)
    table.to_csv(snakemake.output.csv, index=False)
    Path(snakemake.output.markdown).write_text(render_markdown(table, snakemake.params.modalities))
