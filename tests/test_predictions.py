"""The predictions contract: written with its metadata, read back, and refused when broken."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import PREDICTIONS_SCHEMA
from readrace.evaluation.predictions import (
    METADATA_KEY,
    Predictions,
    PredictionsError,
    read_predictions,
    validate,
    write_predictions,
)
from readrace.tasks import Level, race_task

KEYS = ("kind", "model", "train_dataset", "test_dataset", "arch", "perturbation", "seed")


def _predictions(n: int = 8) -> Predictions:
    rng = np.random.default_rng(0)
    raw = rng.random((n, 3))
    probs = raw / raw.sum(axis=1, keepdims=True)
    table = pd.DataFrame({
        "kind": "race_detection", "model": "race_detection/a/resnet18/none/seed0", "train_dataset": "a",
        "test_dataset": "b", "arch": "resnet18", "perturbation": "none", "seed": 0,
        "image_id": [f"{i:016x}" for i in range(n)], "patient_id": [f"{i // 2:016x}" for i in range(n)],
        "study_id": [f"{i // 2:016x}" for i in range(n)], "label": np.arange(n) % 3,
        "prob_Asian": probs[:, 0], "prob_Black": probs[:, 1], "prob_White": probs[:, 2],
    })
    task = race_task("cxr")
    return Predictions(table, task, task.levels, "patient", KEYS)


def test_written_predictions_read_back_with_their_task_levels_and_keys(tmp_path):
    path = tmp_path / "p.parquet"
    written = _predictions()
    write_predictions(written, path, PREDICTIONS_SCHEMA)
    read = read_predictions(path, PREDICTIONS_SCHEMA)
    pd.testing.assert_frame_equal(read.table, written.table)
    assert read.task == written.task and read.levels == written.levels
    assert read.keys == KEYS and read.bootstrap_unit == "patient"
    assert read.key_values["model"] == "race_detection/a/resnet18/none/seed0"
    # Plain pandas still reads the rows.
    assert len(pd.read_parquet(path)) == 8


def test_a_parquet_file_without_the_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.parquet"
    _predictions().table.to_parquet(path)
    with pytest.raises(PredictionsError, match="not a readrace predictions file"):
        read_predictions(path, PREDICTIONS_SCHEMA)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda t: t.drop(columns=["patient_id"]), "patient_id: required column is missing"),
        (lambda t: t.drop(columns=["prob_White"]), "are not the task's"),
        (lambda t: t[["prob_Black", "prob_Asian", "prob_White", *[c for c in t if not c.startswith("prob_")]]],
         "are not the task's"),
        (lambda t: t.assign(prob_Asian=t["prob_Asian"] + 0.5).assign(prob_Asian=lambda x: x["prob_Asian"].clip(0, 1)),
         "must sum to 1"),
        (lambda t: t.assign(label=7), "label: values outside 0..2"),
        (lambda t: t.assign(image_id=t["image_id"].iloc[0]), "an image is predicted twice"),
        (lambda t: t.assign(seed=np.arange(len(t))), "seed: a key column must hold one value"),
        (lambda t: t.assign(patient_id="MRN12345"), r"patient_id: 8 value\(s\) do not match"),
        (lambda t: t.drop(columns=["arch"]), "arch: key column is missing"),
    ],
)
def test_broken_predictions_are_refused_with_the_reason(tmp_path, breakage, message):
    broken = _predictions()
    broken.table = breakage(broken.table)
    with pytest.raises(PredictionsError, match=message):
        write_predictions(broken, tmp_path / "p.parquet", PREDICTIONS_SCHEMA)
    assert not (tmp_path / "p.parquet").exists()


def test_levels_must_match_the_task_and_average_by_a_column():
    ct = race_task("ct")
    predictions = _predictions()
    predictions.task = ct
    predictions.table = predictions.table.drop(columns=["prob_Asian"]).assign(
        prob_Black=0.5, prob_White=0.5, label=lambda t: t["label"] % 2)
    predictions.levels = (Level("slice"),)
    with pytest.raises(PredictionsError, match="do not match the task's"):
        validate(predictions, PREDICTIONS_SCHEMA)
    predictions.levels = (Level("slice"), Level("study", "series_id"))
    with pytest.raises(PredictionsError, match="averages by 'series_id', which is not a column"):
        validate(predictions, PREDICTIONS_SCHEMA)


def test_the_metadata_is_json_under_the_documented_key(tmp_path):
    path = tmp_path / "p.parquet"
    write_predictions(_predictions(), path, PREDICTIONS_SCHEMA)
    metadata = pq.read_schema(path).metadata
    assert METADATA_KEY in metadata and b'"bootstrap_unit": "patient"' in metadata[METADATA_KEY]
