"""Job: AUCs with patient-bootstrap intervals for one predictions file."""

import pandas as pd

from readrace.logs import job_logging
from readrace.evaluation.scoring import score_predictions

with job_logging(snakemake.log[0]):
    evaluation = snakemake.params.evaluation
    scores = score_predictions(
        pd.read_parquet(snakemake.input[0]),
        snakemake.params.modality,
        n_boot=evaluation["bootstrap"],
        seed=evaluation["seed"],
        confidence=evaluation["confidence"],
    )
    scores.to_csv(snakemake.output[0], index=False)
