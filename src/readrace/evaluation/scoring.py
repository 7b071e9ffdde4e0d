"""Scores from predictions: AUC per class and macro, per evaluation level, with bootstrap CIs.

One stage scores every kind of model: it reads a predictions file (the contract of
:mod:`readrace.evaluation.predictions`) and needs nothing else. Kept apart from training so
that a scoring job never imports torch: re-scoring a whole experiment matrix (say with
another number of bootstrap resamples) is cheap.

A scores table has one row per (level, class), after the predictions' key columns:

``level``
    what is scored, named for what it is on the test dataset: ``image`` or ``slice`` (the
    unit the model sees), ``study`` (the mean probability of a study's images), ``patient``
    (the same, where the dataset's studies are its patients, as NLST's are).
``auc``, ``ci_low``, ``ci_high``
    one-vs-rest AUC of the class (``macro``: the mean over classes) and its percentile
    interval from a bootstrap over ``bootstrap_unit``.
``n_units``
    the number of scored units at that level (of that class; ``macro``: all), e.g. studies.
``n_images``
    the number of images (slices) behind them.
``bootstrap_unit``, ``n_bootstrap_units``
    what the bootstrap resamples (``patient``; ``study`` where the dataset has no patient
    ids) and how many distinct ones there are.
"""

from __future__ import annotations

import pandas as pd

from readrace.evaluation.metrics import aggregate_by, bootstrap_auc, bootstrap_label_auc
from readrace.evaluation.predictions import Predictions

SCORE_COLUMNS: tuple[str, ...] = (
    "level", "class", "auc", "ci_low", "ci_high", "n_units", "n_images", "bootstrap_unit", "n_bootstrap_units",
)


def score_predictions(predictions: Predictions, n_boot: int, seed: int, confidence: float) -> pd.DataFrame:
    """AUC per class and macro at every level of the predictions, with bootstrap intervals.

    One row per (level, class), led by the predictions' key columns (``kind``, ``model``,
    ..., ``test_dataset``), then :data:`SCORE_COLUMNS`.
    """
    if predictions.task.type == "multilabel":
        return _score_multilabel(predictions, n_boot, seed, confidence)
    table, task = predictions.table, predictions.task
    prob_columns = task.probability_columns
    scored = []
    for level in predictions.levels:
        units = table.assign(n_images=1)
        if level.by is not None:
            units = aggregate_by(units, level.by, prob_columns, label="label", patient="patient_id", count="n_images")
        result = bootstrap_auc(
            units["label"].to_numpy(), units[prob_columns].to_numpy(), units["patient_id"].to_numpy(),
            task.classes, n_boot=n_boot, seed=seed, level=confidence,
        )
        images = units.groupby("label")["n_images"].sum()
        per_class = [int(images.get(k, 0)) for k in range(task.n_outputs)] + [int(units["n_images"].sum())]
        scored.append(pd.DataFrame({
            "level": level.name,
            "class": result["class"],
            "auc": result["auc"],
            "ci_low": result["ci_low"],
            "ci_high": result["ci_high"],
            "n_units": result["n_images"],
            "n_images": per_class,
            "bootstrap_unit": predictions.bootstrap_unit,
            "n_bootstrap_units": result["n_patients"],
        }))
    out = pd.concat(scored, ignore_index=True)
    for position, (column, value) in enumerate(predictions.key_values.items()):
        out.insert(position, column, value)
    return out


def _score_multilabel(predictions: Predictions, n_boot: int, seed: int, confidence: float) -> pd.DataFrame:
    """The same table for a multilabel task: one row per (level, label), ``n_units`` and
    ``n_images`` counting the label's positives, then ``macro`` (the mean over labels, all
    units). An aggregate level averages a unit's probabilities; the unit has a label when
    any of its images has it."""
    table, task = predictions.table, predictions.task
    prob_columns, truth_columns = task.probability_columns, task.truth_columns
    scored = []
    for level in predictions.levels:
        units = table.assign(n_images=1)
        if level.by is not None:
            units = units.groupby(level.by, sort=False).agg(
                patient_id=("patient_id", "first"), n_images=("n_images", "sum"),
                **{c: (c, "mean") for c in prob_columns}, **{c: (c, "max") for c in truth_columns},
            ).reset_index()
        truth = units[truth_columns].to_numpy(dtype=float)
        result = bootstrap_label_auc(truth, units[prob_columns].to_numpy(), units["patient_id"].to_numpy(),
                                     task.classes, n_boot=n_boot, seed=seed, level=confidence)
        weights = units["n_images"].to_numpy()
        per_label = [int(weights[truth[:, k] == 1].sum()) for k in range(task.n_outputs)] + [int(weights.sum())]
        scored.append(pd.DataFrame({
            "level": level.name, "class": result["class"], "auc": result["auc"], "ci_low": result["ci_low"],
            "ci_high": result["ci_high"], "n_units": result["n_images"], "n_images": per_label,
            "bootstrap_unit": predictions.bootstrap_unit, "n_bootstrap_units": result["n_patients"],
        }))
    out = pd.concat(scored, ignore_index=True)
    for position, (column, value) in enumerate(predictions.key_values.items()):
        out.insert(position, column, value)
    return out
