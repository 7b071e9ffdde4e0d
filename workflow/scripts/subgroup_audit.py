"""Job: the subgroup audit of one clinical model (thresholds from its validation predictions)."""

import pandas as pd

from readrace.audits.subgroups import AuditSettings, audit_subgroups
from readrace.evaluation.predictions import read_predictions
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    evaluation = snakemake.params.evaluation
    schema = snakemake.params.schema
    table = audit_subgroups(
        read_predictions(snakemake.input.test, schema),
        read_predictions(snakemake.input.validation, schema),
        pd.read_parquet(snakemake.input.manifest, columns=["image_id", "race", "sex", "age"]),
        AuditSettings.from_config(snakemake.params.audit),
        n_boot=evaluation["bootstrap"], seed=evaluation["seed"], confidence=evaluation["confidence"],
    )
    table.to_csv(snakemake.output[0], index=False)
    log.info("%d audit rows", len(table))
