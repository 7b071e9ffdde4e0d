"""Experiment matrix, scoring levels and the Table-3 rendering, on hand-built predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from readrace.experiments import Coordinate, evaluation_datasets, expand_experiments, task_rows
from readrace.evaluation.scoring import score_predictions
from readrace.evaluation.tables import TABLE_COLUMNS, render_markdown

CONFIG = {
    "datasets": {
        "cxr-a": {"modality": "cxr"}, "ct": {"modality": "ct"}, "cxr-b": {"modality": "cxr"},
    },
    "experiments": [
        {"train": ["cxr-a", "ct"], "archs": ["resnet18"], "perturbations": ["none"], "seeds": [0]},
        {"train": ["cxr-a"], "archs": ["resnet18", "resnet34"], "perturbations": ["none", "lpf-d8"], "seeds": [0, 1]},
    ],
}


def test_matrix_expands_every_combination_once():
    coordinates = expand_experiments(CONFIG)
    assert len(coordinates) == 1 + 2 * 2 * 2  # ct; cxr-a: 2 archs x 2 perturbations x 2 seeds
    assert Coordinate("cxr-a", "resnet18", "none", 0) in coordinates
    assert coordinates == sorted(set(coordinates))
    assert Coordinate("cxr-a", "resnet34", "lpf-d8", 1).path == "cxr-a/resnet34/lpf-d8/seed1"


def test_models_are_tested_on_every_dataset_of_their_modality():
    assert evaluation_datasets(CONFIG, "cxr-a") == ["cxr-a", "cxr-b"]
    assert evaluation_datasets(CONFIG, "cxr-b") == ["cxr-b", "cxr-a"]
    assert evaluation_datasets(CONFIG, "ct") == ["ct"]


def test_task_rows_keep_the_task_classes_in_registry_order():
    manifest = pd.DataFrame({"race": ["White", "Asian", "Black", "Asian"], "split": ["test"] * 3 + ["train"]})
    cxr = task_rows(manifest, "cxr", ("test",))
    assert cxr["label"].tolist() == [2, 0, 1]
    ct = task_rows(manifest, "ct", ("test", "train"))
    assert ct["race"].tolist() == ["White", "Black"] and ct["label"].tolist() == [1, 0]


def _ct_predictions() -> pd.DataFrame:
    """3 slices in each of 2 studies of 6 patients; study means separate Black and White
    perfectly although single slices do not."""
    rows = []
    for patient in range(6):
        label = patient % 2  # 0 Black, 1 White
        for study in range(2):
            for k, p_white in enumerate([0.2, 0.5, 0.8] if label else [0.1, 0.4, 0.55]):
                rows.append({
                    "train_dataset": "ct", "test_dataset": "ct", "arch": "resnet18", "perturbation": "none",
                    "seed": 0, "image_id": f"{patient}-{study}-{k}", "patient_id": f"p{patient}",
                    "study_id": f"s{patient}-{study}", "race": ["Black", "White"][label], "label": label,
                    "prob_Black": 1 - p_white, "prob_White": p_white,
                })
    return pd.DataFrame(rows)


def test_ct_is_scored_per_slice_and_per_study():
    scores = score_predictions(_ct_predictions(), "ct", n_boot=200, seed=0, confidence=0.95)
    assert list(scores.columns) == list(TABLE_COLUMNS)
    assert set(scores["level"]) == {"slice", "study"}
    study = scores[(scores["level"] == "study") & (scores["class"] == "Black")].iloc[0]
    assert study["auc"] == 1.0 and study["ci_low"] == 1.0  # study means 0.5 vs ~0.35 separate
    slice_ = scores[(scores["level"] == "slice") & (scores["class"] == "Black")].iloc[0]
    assert slice_["auc"] < 1.0  # single slices overlap (0.55 vs 0.5)
    assert study["n_images"] == 6 and slice_["n_images"] == 18  # Black: 3 patients, 2 studies, 3 slices
    assert study["n_patients"] == 3


def test_a_class_never_predicted_still_has_its_auc():
    rng = np.random.default_rng(0)
    label = np.repeat([0, 1, 2], 20)
    probs = np.zeros((60, 3))
    probs[:, 1] = 0.6 + 0.1 * rng.random(60)  # Black always wins the argmax...
    probs[:, 0] = np.where(label == 0, 0.35, 0.05)  # ...yet Asian is ranked perfectly
    probs[:, 2] = 1 - probs[:, 0] - probs[:, 1]
    predictions = pd.DataFrame({
        "train_dataset": "a", "test_dataset": "a", "arch": "resnet18", "perturbation": "none", "seed": 0,
        "image_id": [str(i) for i in range(60)], "patient_id": [str(i) for i in range(60)],
        "study_id": [str(i) for i in range(60)], "race": "x", "label": label,
        "prob_Asian": probs[:, 0], "prob_Black": probs[:, 1], "prob_White": probs[:, 2],
    })
    scores = score_predictions(predictions, "cxr", n_boot=100, seed=0, confidence=0.95).set_index("class")
    assert (probs.argmax(axis=1) == 1).all()
    assert scores.loc["Asian", "auc"] == 1.0
    assert set(scores.index) == {"Asian", "Black", "White", "macro"}


def test_markdown_has_the_paper_sections():
    cxr_rows = []
    for test in ("cxr-a", "cxr-b"):
        for perturbation in ("none", "lpf-d8"):
            for cls in ("Asian", "Black", "White", "macro"):
                cxr_rows.append(dict(train_dataset="cxr-a", test_dataset=test, arch="resnet18", perturbation=perturbation,
                                     seed=0, level="image", **{"class": cls}, auc=0.9, ci_low=0.85, ci_high=0.95,
                                     n_patients=10, n_images=20))
    ct = score_predictions(_ct_predictions(), "ct", n_boot=100, seed=0, confidence=0.95)
    table = pd.concat([pd.DataFrame(cxr_rows), ct], ignore_index=True)
    text = render_markdown(table, {"cxr-a": "cxr", "cxr-b": "cxr", "ct": "ct"})
    assert "## Primary race detection in chest radiographs (internal validation)" in text
    assert "| cxr-a resnet18 (seed 0) | 0.900 (0.850-0.950) | 0.900 (0.850-0.950) | 0.900 (0.850-0.950) | 0.900 (0.850-0.950) |" in text
    assert "| cxr-a resnet18 (seed 0) to cxr-b |" in text
    assert "## Race detection in other modalities: binary (Black or White)" in text
    assert "1.000 (study; 1.000-1.000)" in text and "(slice; " in text
    assert "| cxr-a resnet18 (seed 0) | cxr-a | lpf-d8 | image |" in text


def test_a_group_keeps_datasets_of_one_modality_apart():
    config = {"datasets": {
        "hand": {"modality": "xr", "group": "hand"}, "spine": {"modality": "xr", "group": "cspine"},
        "hand-2": {"modality": "xr", "group": "hand"},
    }}
    assert evaluation_datasets(config, "hand") == ["hand", "hand-2"]
    assert evaluation_datasets(config, "spine") == ["spine"]
