"""Job: the membership table, summary and figures over every audit of the config."""

from pathlib import Path

from readrace.audits.report import (build_tables, capacity_figure, disparity_figure, dp_figure, render_summary,
                                    survival_figure)
from readrace.logs import job_logging
from readrace.models import parameter_count

with job_logging(snakemake.log[0]):
    inputs = {name: list(snakemake.input[name]) for name in
              ("summaries", "records", "patients", "attacks", "disparity", "tests", "utility")}
    parameters = {arch: parameter_count(arch, n) for arch, n in snakemake.params.arch_classes.items()}
    tables = build_tables(snakemake.params.audits, inputs, parameters)
    tables["table"].to_csv(snakemake.output.table, index=False)
    Path(snakemake.output.summary).write_text(render_summary(tables, snakemake.params.n_exposed))
    survival_figure(tables["patients"], snakemake.output.survival)
    disparity_figure(tables["disparity"], snakemake.output.disparity)
    dp_figure(tables["summary"], tables["attacks"], snakemake.output.dp)
    capacity_figure(tables["capacity"], snakemake.output.capacity)
