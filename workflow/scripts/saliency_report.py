"""Job: the saliency shares of every full model in one table, and the saliency panels."""

import numpy as np
import pandas as pd

from readrace.experiments import model_of
from readrace.localisation.report import plot_saliency
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    tables, maps = [], {}
    for (model, test), shares, maps_path in zip(snakemake.params.runs, snakemake.input.shares, snakemake.input.maps):
        coordinate = model_of(model)
        keys = {"model": model, "train_dataset": coordinate.train, "test_dataset": test, "arch": coordinate.arch,
                "seed": coordinate.seed}
        tables.append(pd.read_csv(shares).assign(**keys))
        with np.load(maps_path) as arrays:
            maps[f"{coordinate.train} {coordinate.arch} s{coordinate.seed}"] = {k: arrays[k] for k in arrays.files}
    table = pd.concat(tables, ignore_index=True)
    table[["model", "train_dataset", "test_dataset", "arch", "seed", "class", "region", "share", "area", "n_images"]].to_csv(
        snakemake.output.table, index=False)
    plot_saliency(maps, snakemake.output.figure)
