"""Job: tune, fit and test one tabular model of race (readrace.confounders.tabular)."""

import json

import numpy as np
import pandas as pd

from readrace.confounders.features import LabelPolicy, feature_set
from readrace.confounders.tabular import fit_tabular
from readrace.evaluation.predictions import write_predictions
from readrace.experiments.confounders import TabularModel
from readrace.logs import job_logging
from readrace.tasks import Task

with job_logging(snakemake.log[0]) as log:
    w = snakemake.wildcards
    settings = snakemake.params.settings
    model = TabularModel(w.train, w.features, w.estimator, int(w.seed))
    features = feature_set(w.features)
    descriptor = json.loads(open(snakemake.input.descriptor).read())
    result = fit_tabular(
        pd.read_parquet(snakemake.input.manifest),
        task=Task.from_dict(snakemake.params.task),
        features=features,
        estimator=w.estimator,
        settings=settings["estimator"],
        policy=LabelPolicy(**(settings["labels"] or {})),
        seed=int(w.seed),
        cv_folds=settings["cv_folds"],
        keys={"kind": model.kind, "model": model.path, **model.columns, "test_dataset": w.train},
        units=descriptor["units"],
        images=np.load(snakemake.input.cache, mmap_mode="r") if features.needs_images else None,
    )
    write_predictions(result.predictions, snakemake.output.predictions, snakemake.params.schema)
    result.search.to_csv(snakemake.output.search, index=False)
    log.info("%s: best %s, %d test predictions", model.path, result.best_params, len(result.predictions.table))
