"""Predictions: one documented, validated contract for every kind of model.

A predictions file (``results/predictions/{model}/{test}.parquet``) holds one row per test
image scored by one model: the columns that identify the model (constant in the file), the
image's pseudonymous ids, its label (a multiclass task's class code ``label``; a multilabel
task's ``true_{label}`` columns, 1, 0 or NaN where the label is ignored), and a probability
per class of the task. Its row schema
is ``workflow/schemas/predictions.schema.yaml``. The file's Parquet metadata, under the key
``readrace.predictions``, is a JSON object that says how to score it::

    {"format": 1,
     "task": {...},                # readrace.tasks.Task.to_dict()
     "levels": [{"name": "slice", "by": null}, {"name": "patient", "by": "study_id"}],
     "bootstrap_unit": "patient",  # what patient_id really is on the test dataset
     "keys": ["kind", "model", "train_dataset", "test_dataset", "arch", "perturbation", "seed"]}

``levels`` are the task's levels named for what they are on the test dataset
(:func:`readrace.tasks.level_names`): NLST's studies are participants, so its second level
is ``patient``. ``bootstrap_unit`` is ``patient``, or ``study`` where the dataset has no
patient ids (RSPECT without a patient table). So one scoring stage
(:mod:`readrace.evaluation.scoring`) serves image models, tabular models, probes and shadow
models alike, and never needs to know which kind made the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from readrace.data.columns import check_columns
from readrace.tasks import Level, Task

METADATA_KEY = b"readrace.predictions"
FORMAT = 1

#: Row columns every predictions file has, besides its key columns and ``prob_{class}``.
ID_COLUMNS: tuple[str, ...] = ("image_id", "patient_id", "study_id")

#: Tolerance on the sum of a multiclass row's probabilities (they are stored as float64
#: from a float32 softmax).
_SUM_TOLERANCE = 1e-4


class PredictionsError(ValueError):
    """A predictions table breaks its contract; the message names the file and the problem."""


@dataclass
class Predictions:
    """A predictions table with what its metadata says about it."""

    table: pd.DataFrame
    task: Task
    levels: tuple[Level, ...]
    bootstrap_unit: str = "patient"
    keys: tuple[str, ...] = field(default=("kind", "model", "test_dataset"))

    @property
    def key_values(self) -> dict[str, Any]:
        """The columns that identify the model and test set, and their (constant) values."""
        return {key: self.table[key].iloc[0] for key in self.keys}

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task": self.task.to_dict(),
            "levels": [{"name": level.name, "by": level.by} for level in self.levels],
            "bootstrap_unit": self.bootstrap_unit,
            "keys": list(self.keys),
        }


def validate(predictions: Predictions, schema: dict | str | Path, where: str = "predictions") -> None:
    """Raise :class:`PredictionsError` listing every way ``predictions`` breaks the contract."""
    table, task = predictions.table, predictions.task
    problems = check_columns(table, schema)
    missing_keys = [key for key in predictions.keys if key not in table]
    problems += [f"{key}: key column is missing" for key in missing_keys]
    if table.empty:
        problems.append("no rows")
    else:
        for key in set(predictions.keys) - set(missing_keys):
            if table[key].nunique(dropna=False) != 1:
                problems.append(f"{key}: a key column must hold one value, got {table[key].nunique(dropna=False)}")
    scores = [column for column in table.columns if str(column).startswith("prob_")]
    if scores != task.probability_columns:
        problems.append(f"probability columns {scores} are not the task's {task.probability_columns}")
    if "image_id" in table and table["image_id"].duplicated().any():
        problems.append("image_id: an image is predicted twice")
    if task.type == "multilabel":
        # One truth column per label (1, 0, NaN: ignored) in place of the class code.
        truth = [column for column in table.columns if str(column).startswith("true_")]
        if truth != task.truth_columns:
            problems.append(f"truth columns {truth} are not the task's {task.truth_columns}")
        elif len(table):
            values = table[truth].to_numpy(dtype=float)
            if not (np.isnan(values) | np.isin(values, (0.0, 1.0))).all():
                problems.append("true_{label} columns must hold 0, 1 or NaN")
    elif "label" not in table:
        problems.append("label: required column is missing")
    elif len(table) and not table["label"].between(0, task.n_outputs - 1).all():
        problems.append(f"label: values outside 0..{task.n_outputs - 1}")
    if task.type == "multiclass" and scores == task.probability_columns and len(table):
        sums = table[scores].to_numpy(dtype=float).sum(axis=1)
        if not np.allclose(sums, 1.0, atol=_SUM_TOLERANCE):
            problems.append("the class probabilities of a row must sum to 1")
    if len(predictions.levels) != len(task.levels):
        problems.append(f"levels {predictions.levels} do not match the task's {task.levels}")
    for level in predictions.levels:
        if level.by is not None and level.by not in table:
            problems.append(f"level {level.name!r} averages by {level.by!r}, which is not a column")
    if predictions.bootstrap_unit not in ("patient", "study"):
        problems.append(f"bootstrap_unit must be patient or study, got {predictions.bootstrap_unit!r}")
    if problems:
        raise PredictionsError(f"{where} break the predictions contract:\n  " + "\n  ".join(problems))


def write_predictions(predictions: Predictions, path: str | Path, schema: dict | str | Path) -> None:
    """Validate, then write the table with its metadata."""
    validate(predictions, schema, where=str(path))
    arrow = pa.Table.from_pandas(predictions.table, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(predictions.metadata()).encode()
    pq.write_table(arrow.replace_schema_metadata(metadata), path)


def read_predictions(path: str | Path, schema: dict | str | Path) -> Predictions:
    """Read and validate a predictions file."""
    arrow = pq.read_table(path)
    raw = (arrow.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise PredictionsError(f"{path}: no {METADATA_KEY.decode()} metadata; not a readrace predictions file")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise PredictionsError(f"{path}: predictions format {meta.get('format')!r}, expected {FORMAT}")
    predictions = Predictions(
        table=arrow.to_pandas(),
        task=Task.from_dict(meta["task"]),
        levels=tuple(Level(level["name"], level["by"]) for level in meta["levels"]),
        bootstrap_unit=meta["bootstrap_unit"],
        keys=tuple(meta["keys"]),
    )
    validate(predictions, schema, where=str(path))
    return predictions
