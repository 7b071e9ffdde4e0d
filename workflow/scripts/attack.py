"""Job: FGSM / PGD against the race and clinical models of one coordinate, by race group."""

import numpy as np
import pandas as pd
import torch

from readrace.audits.robustness import attack_rows, smallest_flipping_epsilon, summarise
from readrace.config import execution_settings
from readrace.logs import job_logging

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    settings, evaluation = snakemake.params.attack, snakemake.params.evaluation
    execution = execution_settings(snakemake.config)
    rows = attack_rows(
        snakemake.input.race_model, snakemake.input.clinical_model, pd.read_parquet(snakemake.input.manifest),
        np.load(snakemake.input.cache, mmap_mode="r"), finding=settings["finding"], attacks=settings["attacks"],
        epsilons=settings["epsilons"], steps=settings["pgd_steps"], alpha_ratio=settings["pgd_alpha_ratio"],
        batch_size=execution["predict_batch_size"], device=execution["device"], seed=settings["seed"],
    )
    race_classes = [c[len("prob_"):] for c in rows.columns if c.startswith("prob_")]
    rows.to_parquet(snakemake.output.rows, index=False)
    summarise(rows, race_classes, evaluation["bootstrap"], evaluation["seed"], evaluation["confidence"]).to_csv(
        snakemake.output.summary, index=False)
    _, by_group = smallest_flipping_epsilon(rows)
    by_group.to_csv(snakemake.output.min_epsilon, index=False)
    log.info("%d attacked predictions", len(rows))
