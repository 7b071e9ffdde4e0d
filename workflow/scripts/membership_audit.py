"""Job: per-record and per-patient risk, aggregate attacks and disparity of one audit."""

import numpy as np
import pandas as pd

from readrace.audits.membership import audit, disparity
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    settings = snakemake.params.attack
    result = audit(
        pd.read_parquet(snakemake.input.scores),
        pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"),
        top_fraction=settings["top_fraction"],
        exposed_auc=settings["exposed_auc"],
        age_bands=list(settings["age_bands"]),
        control_seed=settings["control_seed"],
    )
    patients = result["patients"]
    groups, tests = disparity(patients, patients["exposed"].to_numpy(), ["race", "sex", "age_band"])
    for name in ("records", "patients", "attacks", "summary"):
        result[name].to_csv(snakemake.output[name], index=False)
    groups.to_csv(snakemake.output.disparity, index=False)
    tests.to_csv(snakemake.output.tests, index=False)
    log.info("mean record AUC %.3f (control %.3f)", result["summary"]["mean_auc_binormal"].iloc[0],
             result["summary"]["control_mean_auc_binormal"].iloc[0])
