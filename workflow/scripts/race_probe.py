"""Job: a linear race probe on one encoder's frozen features (clinical model, race model, or
an untrained network of the same architecture and seed)."""

import json

import numpy as np
import pandas as pd
import torch

from readrace.audits.probe import encoder_network, run_probe
from readrace.config import execution_settings
from readrace.evaluation.predictions import write_predictions
from readrace.experiments import model_of
from readrace.logs import job_logging
from readrace.tasks import race_task

with job_logging(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    w = snakemake.wildcards
    clinical = model_of(snakemake.params.model)
    network, arch, perturbation = encoder_network(w.encoder, snakemake.input.get("model"), clinical.arch, clinical.seed)
    descriptor = json.loads(open(snakemake.input.descriptor).read())
    probe = snakemake.params.probe
    predictions, projection = run_probe(
        network, perturbation, pd.read_parquet(snakemake.input.manifest), np.load(snakemake.input.cache, mmap_mode="r"),
        task=race_task(snakemake.config["datasets"][w.train]["modality"]),
        keys={"kind": clinical.kind, "model": clinical.probe(w.encoder), **clinical.columns, "encoder": w.encoder,
              "test_dataset": w.train},
        units=descriptor["units"], execution=execution_settings(snakemake.config),
        C=probe["C"], max_iter=probe["max_iter"], seed=clinical.seed,
    )
    write_predictions(predictions, snakemake.output.predictions, snakemake.params.schema)
    projection.to_csv(snakemake.output.projection, index=False)
    log.info("%s probe: %d test predictions", w.encoder, len(predictions.table))
