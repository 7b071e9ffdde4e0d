"""The race-detection kind, tasks and their levels, scoring and the Table-3 rendering, on
hand-built predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from readrace.evaluation.predictions import Predictions
from readrace.evaluation.scoring import SCORE_COLUMNS, score_predictions
from readrace.evaluation.tables import TABLE_COLUMNS, render_markdown
from readrace.experiments import KINDS, evaluation_datasets, expand_experiments, experiment_targets, model_of
from readrace.experiments.race_detection import (
    RaceDetectionModel,
    filter_figure_inputs,
    filter_models,
    filter_sample_ids,
    score_files,
)
from readrace.tasks import Level, Task, level_names, race_task

CONFIG = {
    "datasets": {
        "cxr-a": {"modality": "cxr"}, "ct": {"modality": "ct"}, "cxr-b": {"modality": "cxr"},
    },
    "experiments": [
        {"kind": "race_detection", "train": ["cxr-a", "ct"], "archs": ["resnet18"], "perturbations": ["none"], "seeds": [0]},
        {"kind": "race_detection", "train": ["cxr-a"], "archs": ["resnet18", "resnet34"],
         "perturbations": ["none", "lpf-d8"], "seeds": [0, 1]},
    ],
}


def test_matrix_expands_every_combination_once_by_kind():
    models = expand_experiments(CONFIG)
    # Every registered kind is a key; the kinds no block names have no models.
    assert set(models) == set(KINDS) and "race_detection" in KINDS
    assert all(not found for kind, found in models.items() if kind != "race_detection")
    race = models["race_detection"]
    assert len(race) == 1 + 2 * 2 * 2  # ct; cxr-a: 2 archs x 2 perturbations x 2 seeds
    assert RaceDetectionModel("cxr-a", "resnet18", "none", 0) in race
    assert race == sorted(set(race))
    model = RaceDetectionModel("cxr-a", "resnet34", "lpf-d8", 1)
    assert model.path == "race_detection/cxr-a/resnet34/lpf-d8/seed1"
    assert model.path == RaceDetectionModel.PATH.format(train="cxr-a", arch="resnet34", perturbation="lpf-d8", seed=1)


def test_a_model_id_reads_back_as_its_coordinate():
    model = RaceDetectionModel("cxr-a", "resnet34", "bpf-d10-50", 2)
    assert model_of(model.path) == model
    assert model.columns == {"train_dataset": "cxr-a", "arch": "resnet34", "perturbation": "bpf-d10-50", "seed": 2}
    for bad in ("race_detection/cxr-a/resnet34/none/seedx", "race_detection/cxr-a/none/seed0", "clinical/a/b"):
        with pytest.raises(ValueError, match="model id"):
            model_of(bad)


def test_the_kind_asks_for_its_table_and_only_filter_models_get_the_figures():
    race = expand_experiments(CONFIG)["race_detection"]
    assert [m.perturbation for m in filter_models(race)] == ["lpf-d8"] * 4
    targets = experiment_targets(CONFIG, expand_experiments(CONFIG))
    assert "results/tables/race_detection.csv" in targets and "results/figures/filter_auc.png" in targets
    unfiltered = {**CONFIG, "experiments": CONFIG["experiments"][:1]}
    assert "results/figures/filter_auc.png" not in experiment_targets(unfiltered, expand_experiments(unfiltered))
    files = score_files(race, CONFIG)
    assert "results/scores/race_detection/cxr-a/resnet18/none/seed0/cxr-b.csv" in files
    assert len(files) == 2 * 8 + 1  # every cxr-a model on both cxr sets, the ct model on ct


def test_models_are_tested_on_every_dataset_of_their_modality():
    assert evaluation_datasets(CONFIG, "cxr-a") == ["cxr-a", "cxr-b"]
    assert evaluation_datasets(CONFIG, "cxr-b") == ["cxr-b", "cxr-a"]
    assert evaluation_datasets(CONFIG, "ct") == ["ct"]


def test_a_group_keeps_datasets_of_one_modality_apart():
    config = {"datasets": {
        "hand": {"modality": "xr", "group": "hand"}, "spine": {"modality": "xr", "group": "cspine"},
        "hand-2": {"modality": "xr", "group": "hand"},
    }}
    assert evaluation_datasets(config, "hand") == ["hand", "hand-2"]
    assert evaluation_datasets(config, "spine") == ["spine"]


def test_the_race_task_keeps_the_registry_classes_and_order():
    manifest = pd.DataFrame({"race": ["White", "Asian", "Black", "Asian"], "split": ["test"] * 3 + ["train"]})
    cxr = race_task("cxr").rows(manifest)
    assert cxr["label"].tolist() == [2, 0, 1, 0]
    ct = race_task("ct").rows(manifest)
    assert ct["race"].tolist() == ["White", "Black"] and ct["label"].tolist() == [1, 0]
    assert race_task("ct").probability_columns == ["prob_Black", "prob_White"]
    assert [level.name for level in race_task("ct").levels] == ["slice", "study"]
    assert [level.name for level in race_task("cxr").levels] == ["image"]
    assert race_task("mammo").levels == (Level("image"), Level("study", "study_id"))


def test_a_task_survives_its_plain_form():
    task = race_task("ct")
    assert Task.from_dict(task.to_dict()) == task


def test_levels_are_named_for_what_the_dataset_ids_are():
    ct = race_task("ct")
    assert level_names(ct, {"patient": "patient", "study": "study"}) == ["slice", "study"]
    # NLST: the study key is the participant.
    assert level_names(ct, {"patient": "patient", "study": "patient"}) == ["slice", "patient"]


def _ct_predictions(study_unit: str = "study", bootstrap_unit: str = "patient") -> Predictions:
    """3 slices in each of 2 studies of 6 patients; study means separate Black and White
    perfectly although single slices do not."""
    rows = []
    for patient in range(6):
        label = patient % 2  # 0 Black, 1 White
        for study in range(2):
            for k, p_white in enumerate([0.2, 0.5, 0.8] if label else [0.1, 0.4, 0.55]):
                rows.append({
                    "kind": "race_detection", "model": "race_detection/ct/resnet18/none/seed0",
                    "train_dataset": "ct", "test_dataset": "ct", "arch": "resnet18", "perturbation": "none",
                    "seed": 0, "image_id": f"{patient:04x}{study:04x}{k:08x}", "patient_id": f"{patient:016x}",
                    "study_id": f"{patient * 2 + study:016x}", "label": label,
                    "prob_Black": 1 - p_white, "prob_White": p_white,
                })
    task = race_task("ct")
    units = {"patient": bootstrap_unit, "study": study_unit}
    levels = tuple(Level(name, level.by) for name, level in zip(level_names(task, units), task.levels))
    keys = ("kind", "model", "train_dataset", "test_dataset", "arch", "perturbation", "seed")
    return Predictions(pd.DataFrame(rows), task, levels, bootstrap_unit, keys)


def test_ct_is_scored_per_slice_and_per_study_and_counts_what_each_level_holds():
    scores = score_predictions(_ct_predictions(), n_boot=200, seed=0, confidence=0.95)
    assert list(scores.columns[-len(SCORE_COLUMNS):]) == list(SCORE_COLUMNS)
    assert list(scores.columns[:7]) == ["kind", "model", "train_dataset", "test_dataset", "arch", "perturbation", "seed"]
    assert set(scores["level"]) == {"slice", "study"}
    study = scores[(scores["level"] == "study") & (scores["class"] == "Black")].iloc[0]
    assert study["auc"] == 1.0 and study["ci_low"] == 1.0  # study means 0.5 vs ~0.35 separate
    slice_ = scores[(scores["level"] == "slice") & (scores["class"] == "Black")].iloc[0]
    assert slice_["auc"] < 1.0  # single slices overlap (0.55 vs 0.5)
    # Black: 3 patients, 2 studies each, 3 slices per study.
    assert study["n_units"] == 6 and study["n_images"] == 18 and study["n_bootstrap_units"] == 3
    assert slice_["n_units"] == 18 and slice_["n_images"] == 18 and slice_["n_bootstrap_units"] == 3
    macro = scores[(scores["level"] == "study") & (scores["class"] == "macro")].iloc[0]
    assert macro["n_units"] == 12 and macro["n_images"] == 36 and macro["n_bootstrap_units"] == 6
    assert set(scores["bootstrap_unit"]) == {"patient"}


def test_a_dataset_whose_studies_are_patients_is_scored_per_patient():
    scores = score_predictions(_ct_predictions(study_unit="patient"), n_boot=100, seed=0, confidence=0.95)
    assert list(dict.fromkeys(scores["level"])) == ["slice", "patient"]


def test_a_dataset_without_patient_ids_says_its_bootstrap_resamples_studies():
    scores = score_predictions(_ct_predictions(bootstrap_unit="study"), n_boot=100, seed=0, confidence=0.95)
    assert set(scores["bootstrap_unit"]) == {"study"}
    rendered = render_markdown(scores.drop(columns=["kind"]), {"ct": "ct"})
    assert "The intervals on ct resample studies" in rendered


def test_a_class_never_predicted_still_has_its_auc():
    rng = np.random.default_rng(0)
    label = np.repeat([0, 1, 2], 20)
    probs = np.zeros((60, 3))
    probs[:, 1] = 0.6 + 0.1 * rng.random(60)  # Black always wins the argmax...
    probs[:, 0] = np.where(label == 0, 0.35, 0.05)  # ...yet Asian is ranked perfectly
    probs[:, 2] = 1 - probs[:, 0] - probs[:, 1]
    table = pd.DataFrame({
        "kind": "race_detection", "model": "m", "test_dataset": "a",
        "image_id": [f"{i:016x}" for i in range(60)], "patient_id": [f"{i:016x}" for i in range(60)],
        "study_id": [f"{i:016x}" for i in range(60)], "label": label,
        "prob_Asian": probs[:, 0], "prob_Black": probs[:, 1], "prob_White": probs[:, 2],
    })
    task = race_task("cxr")
    scores = score_predictions(Predictions(table, task, task.levels), n_boot=100, seed=0, confidence=0.95)
    scores = scores.set_index("class")
    assert (probs.argmax(axis=1) == 1).all()
    assert scores.loc["Asian", "auc"] == 1.0
    assert set(scores.index) == {"Asian", "Black", "White", "macro"}


def test_markdown_has_the_paper_sections():
    cxr_rows = []
    for test in ("cxr-a", "cxr-b"):
        for perturbation in ("none", "lpf-d8"):
            for cls in ("Asian", "Black", "White", "macro"):
                cxr_rows.append(dict(model="m", train_dataset="cxr-a", test_dataset=test, arch="resnet18",
                                     perturbation=perturbation, seed=0, level="image", **{"class": cls}, auc=0.9,
                                     ci_low=0.85, ci_high=0.95, n_units=20, n_images=20, bootstrap_unit="patient",
                                     n_bootstrap_units=10))
    ct = score_predictions(_ct_predictions(study_unit="patient"), n_boot=100, seed=0, confidence=0.95)
    table = pd.concat([pd.DataFrame(cxr_rows), ct.drop(columns=["kind"])], ignore_index=True)[list(TABLE_COLUMNS)]
    text = render_markdown(table, {"cxr-a": "cxr", "cxr-b": "cxr", "ct": "ct"})
    assert "## Primary race detection in chest radiographs (internal validation)" in text
    assert "| cxr-a resnet18 (seed 0) | 0.900 (0.850-0.950) | 0.900 (0.850-0.950) | 0.900 (0.850-0.950) | 0.900 (0.850-0.950) |" in text
    assert "| cxr-a resnet18 (seed 0) to cxr-b |" in text
    assert "## Race detection in other modalities: binary (Black or White)" in text
    # The levels in the task's order, each named for what it is: slice, then patient.
    assert "(slice; " in text and "1.000 (patient; 1.000-1.000)" in text
    assert text.index("(slice; ") < text.index("(patient; ")
    assert "| cxr-a resnet18 (seed 0) | cxr-a | lpf-d8 | image |" in text


def test_the_filter_figures_read_the_first_filtered_dataset_and_show_filters_by_diameter():
    models = [RaceDetectionModel("cxr-b", "resnet18", pid, 0) for pid in ("hpf-d8", "none", "lpf-d24", "lpf-d2", "res-8")]
    models.append(RaceDetectionModel("cxr-a", "resnet18", "hpf-d56", 0))
    assert filter_sample_ids(models) == ["lpf-d2", "lpf-d24", "hpf-d8", "hpf-d56"]
    assert filter_figure_inputs(sorted(models))["cache"] == "results/cxr-a/cache/images.npy"
    assert filter_figure_inputs([RaceDetectionModel("cxr-a", "resnet18", "none", 0)]) == {}
