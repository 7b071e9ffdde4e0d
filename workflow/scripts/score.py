"""Job: AUCs with bootstrap intervals, at every level, for one predictions file."""

from readrace.evaluation.predictions import read_predictions
from readrace.evaluation.scoring import score_predictions
from readrace.logs import job_logging

with job_logging(snakemake.log[0]):
    evaluation = snakemake.params.evaluation
    scores = score_predictions(
        read_predictions(snakemake.input[0], snakemake.params.schema),
        n_boot=evaluation["bootstrap"],
        seed=evaluation["seed"],
        confidence=evaluation["confidence"],
    )
    scores.to_csv(snakemake.output[0], index=False)
