"""Job: an image model's test predictions re-scored within strata (readrace.confounders.strata)."""

import pandas as pd

from readrace.confounders.strata import stratify
from readrace.evaluation.predictions import read_predictions
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    strata, evaluation = snakemake.params.strata, snakemake.params.evaluation
    table = stratify(
        read_predictions(snakemake.input.predictions, snakemake.params.schema),
        pd.read_parquet(snakemake.input.manifest),
        variables=strata["variables"],
        bands=strata["bands"],
        intersections=strata["intersections"],
        min_patients=strata["min_patients"],
        n_boot=evaluation["bootstrap"],
        seed=evaluation["seed"],
        confidence=evaluation["confidence"],
    )
    table.to_csv(snakemake.output[0], index=False)
    log.info("%d strata", table[["stratifier", "stratum"]].drop_duplicates().shape[0])
