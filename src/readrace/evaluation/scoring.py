"""Scores from predictions: AUC per class and macro, per evaluation level, with patient CIs.

Kept apart from training so that a scoring job never imports torch: re-scoring a whole
experiment matrix (say with another number of bootstrap resamples) is cheap.
"""

from __future__ import annotations

import pandas as pd

from readrace.experiments import LEVELS
from readrace.labels import task_classes
from readrace.evaluation.metrics import aggregate_by, bootstrap_auc

#: Columns of a predictions file besides the probabilities (``prob_{class}``).
PREDICTION_KEYS: tuple[str, ...] = (
    "train_dataset", "test_dataset", "arch", "perturbation", "seed",
    "image_id", "patient_id", "study_id", "race", "label",
)


def probability_columns(modality: str) -> list[str]:
    return [f"prob_{name}" for name in task_classes(modality)]


def score_predictions(
    predictions: pd.DataFrame, modality: str, n_boot: int, seed: int, confidence: float
) -> pd.DataFrame:
    """AUC per class and macro, at every level of the modality, with patient-bootstrap CIs.

    One row per (level, class), keyed by the predictions' coordinate columns.
    """
    classes = list(task_classes(modality))
    prob_cols = probability_columns(modality)
    keys = {column: predictions[column].iloc[0] for column in PREDICTION_KEYS[:5]}
    scored = []
    for level in LEVELS[modality]:
        table = predictions
        if level == "study":
            table = aggregate_by(predictions, "study_id", prob_cols, label="label", patient="patient_id")
        result = bootstrap_auc(
            table["label"].to_numpy(), table[prob_cols].to_numpy(), table["patient_id"].to_numpy(),
            classes, n_boot=n_boot, seed=seed, level=confidence,
        )
        result.insert(0, "level", level)
        scored.append(result)
    out = pd.concat(scored, ignore_index=True)
    for position, (column, value) in enumerate(keys.items()):
        out.insert(position, column, value)
    return out
