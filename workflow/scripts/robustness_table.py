"""Job: every robustness audit in one table, the smallest-epsilon comparison, the curves."""

import pandas as pd

from readrace.audits.reports import plot_robustness
from readrace.logs import job_logging


def with_keys(paths, keys):
    frames = []
    for path, key in zip(paths, keys):
        frame = pd.read_csv(path)
        for position, (column, value) in enumerate(key.items()):
            frame.insert(position, column, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


with job_logging(snakemake.log[0]):
    summary = with_keys(snakemake.input.summaries, snakemake.params.coordinates)
    summary.to_csv(snakemake.output.csv, index=False)
    with_keys(snakemake.input.min_epsilon, snakemake.params.coordinates).to_csv(snakemake.output.min_epsilon, index=False)
    plot_robustness(summary, snakemake.output.figure)
