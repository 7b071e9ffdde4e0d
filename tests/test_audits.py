"""Library pieces of the clinical and robustness audits: the finding task and its uncertain
policy, the masked objective, joint per-label bootstrap, thresholds, subgroup gaps, the
faint-finding option of the synthetic cohort, attacks in [0, 1] with the normalisation inside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from readrace.audits.robustness import AttackTarget, make_attack
from readrace.audits.subgroups import AuditSettings, age_band, audit_subgroups, choose_threshold
from readrace.evaluation.metrics import bootstrap_auc, bootstrap_label_auc, roc_auc
from readrace.evaluation.predictions import Predictions, validate
from readrace.evaluation.scoring import score_predictions
from readrace.labels import FINDINGS
from readrace.synthetic import anatomy
from readrace.tasks import Level, Task, findings_task, race_task
from readrace.training.device import normalize
from readrace.training.parts import MultilabelObjective

from conftest import PREDICTIONS_SCHEMA


def test_findings_task_applies_the_uncertain_policy_and_keeps_the_race_task_dict():
    manifest = pd.DataFrame({"Cardiomegaly": [1.0, 0.0, -1.0, np.nan], "Edema": [-1.0, 1.0, 0.0, 0.0]})
    for policy, expected in (("zeros", [0.0, 0.0]), ("ones", [1.0, 1.0])):
        task = findings_task("cxr", ["Cardiomegaly", "Edema"], policy)
        targets = task.label_matrix(manifest)
        assert targets[2, 0] == expected[0] and targets[0, 1] == expected[1]
        assert targets[3, 0] == 0.0  # blank: not mentioned, absent under every policy
    ignore = findings_task("cxr", ["Cardiomegaly", "Edema"], "ignore")
    assert np.isnan(ignore.label_matrix(manifest)[2, 0]) and np.isnan(ignore.label_matrix(manifest)[0, 1])
    assert Task.from_dict(ignore.to_dict()) == ignore
    assert findings_task("cxr").classes == FINDINGS
    assert "uncertain" not in race_task("cxr").to_dict()  # the race models' params do not change
    with pytest.raises(ValueError, match="Edema"):
        findings_task("cxr", ["Edema"]).label_matrix(pd.DataFrame({"Edema": [2.0]}))
    with pytest.raises(ValueError, match="no default finding"):
        findings_task("mammo")
    binary = findings_task("mammo", ["Cardiomegaly"])  # one label: a binary finding
    assert binary.n_outputs == 1 and [level.by for level in binary.levels] == [None, "study_id"]


def test_ignored_labels_leave_the_loss_and_the_plain_objective_is_unchanged():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    masked = MultilabelObjective(ignore_missing=True)
    known = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.0, 0.5, 0.3]), torch.tensor([1.0, 0.0, 1.0]))
    assert masked.loss(logits, targets).item() == pytest.approx(known.item())
    assert MultilabelObjective().id == "multilabel" and masked.id != "multilabel"
    with pytest.raises(ValueError, match="0 or 1"):
        MultilabelObjective().targets(np.array([[np.nan, 1.0]]), 2, np.array([0]))


def test_label_bootstrap_matches_per_label_aucs_and_the_multiclass_bootstrap():
    rng = np.random.default_rng(0)
    n = 120
    truth = rng.integers(0, 2, (n, 2)).astype(float)
    probs = np.clip(truth * 0.3 + rng.random((n, 2)) * 0.7, 0, 1)
    truth[5, 1] = np.nan
    patient = np.repeat(np.arange(60), 2)
    table = bootstrap_label_auc(truth, probs, patient, ["a", "b"], n_boot=200, seed=1)
    assert table.loc[0, "auc"] == pytest.approx(roc_auc(truth[:, 0] == 1, probs[:, 0]))
    known = ~np.isnan(truth[:, 1])
    assert table.loc[1, "auc"] == pytest.approx(roc_auc(truth[known, 1] == 1, probs[known, 1]))
    # One label, no missing value: the same resamples and intervals as the multiclass bootstrap.
    two_class = bootstrap_auc(truth[:, 0].astype(int), np.stack([1 - probs[:, 0], probs[:, 0]], 1), patient,
                              ["no", "yes"], n_boot=200, seed=1)
    assert table.loc[0, ["ci_low", "ci_high"]].tolist() == pytest.approx(two_class.loc[1, ["ci_low", "ci_high"]].tolist())


def _predictions(truth: np.ndarray, probs: np.ndarray, split: str, labels: list[str]) -> Predictions:
    task = findings_task("cxr", labels)
    n = len(truth)
    prefix = "a" if split == "test" else "b"
    ids = [f"{prefix}{k:015x}" for k in range(n)]
    table = pd.DataFrame({"kind": "clinical", "model": "clinical/x/resnet18/none/seed0", "test_dataset": "x",
                          "image_id": ids, "patient_id": ids, "study_id": ids})
    for k, name in enumerate(labels):
        table[f"true_{name}"] = truth[:, k]
    for k, name in enumerate(labels):
        table[f"prob_{name}"] = probs[:, k]
    predictions = Predictions(table, task, (Level("image"),), keys=("kind", "model", "test_dataset"))
    validate(predictions, PREDICTIONS_SCHEMA)
    return predictions


def test_subgroup_audit_finds_a_planted_underdiagnosis_gap_and_not_a_null_one():
    rng = np.random.default_rng(3)
    n = 600
    race = rng.choice(["Black", "White"], n)
    finding = rng.random(n) < 0.5
    truth = np.stack([~finding, finding], 1).astype(float)  # No Finding, Cardiomegaly

    def probs(faint: bool) -> np.ndarray:
        signal = finding * (np.where((race == "Black") & faint, 0.1, 0.6))
        p_finding = np.clip(0.2 + signal + rng.normal(0, 0.15, n), 0, 1)
        return np.stack([1 - p_finding, p_finding], 1)

    manifest = pd.DataFrame({"race": race, "sex": rng.choice(["F", "M"], n), "age": rng.uniform(20, 90, n)})
    labels = ["No Finding", "Cardiomegaly"]
    for faint in (True, False):
        p = probs(faint)
        validation = _predictions(truth, p, "validation", labels)
        test = _predictions(truth, probs(faint), "test", labels)
        audit = audit_subgroups(test, validation, manifest.assign(image_id=test.table["image_id"]),
                                AuditSettings(), n_boot=300, seed=0, confidence=0.95)
        gap = audit[(audit["attribute"] == "race") & (audit["group"] == "gap") & (audit["metric"] == "underdiagnosis")].iloc[0]
        black = audit[(audit["attribute"] == "race") & (audit["group"] == "Black") & (audit["metric"] == "underdiagnosis")].iloc[0]
        if faint:
            assert gap["high_group"] == "Black" and gap["ci_low"] > 0 and black["excess_ci_low"] > 0
        else:
            assert gap["ci_low"] <= 0 <= gap["ci_high"]
            assert black["excess_ci_low"] <= 0 <= black["excess_ci_high"]
    assert set(audit["attribute"]) == {"race", "sex", "age", "race x sex", "race x age"}
    scores = score_predictions(test, n_boot=100, seed=0, confidence=0.95)
    assert list(scores["class"]) == [*labels, "macro"]


def test_thresholds_and_age_bands():
    truth = np.array([0, 0, 1, 1, np.nan])
    probability = np.array([0.1, 0.4, 0.35, 0.8, 0.9])
    assert choose_threshold(truth, probability, "youden") in (0.35, 0.8)
    assert choose_threshold(truth, probability, "max_f1") == pytest.approx(0.35)
    assert np.isnan(choose_threshold(np.zeros(3), np.ones(3), "max_f1"))
    bands = age_band(pd.Series([18, 40, 64, 65, np.nan]), (40, 65))
    assert bands.tolist()[:4] == ["<40", "40-64", "40-64", "65+"] and pd.isna(bands.iloc[4])


def test_faint_findings_keep_the_default_image_and_hide_the_finding():
    def draw(visibility: float) -> np.ndarray:
        return anatomy.chest_radiograph((64, 64), 6.0, bmi=25.0, sex="M", findings={"Cardiomegaly", "Edema"},
                                        view="PA", rng=np.random.default_rng(1), visibility=visibility)[0]

    default = anatomy.chest_radiograph((64, 64), 6.0, bmi=25.0, sex="M", findings={"Cardiomegaly", "Edema"},
                                       view="PA", rng=np.random.default_rng(1))[0]
    healthy = anatomy.chest_radiograph((64, 64), 6.0, bmi=25.0, sex="M", findings=set(), view="PA",
                                       rng=np.random.default_rng(1))[0]
    assert np.array_equal(draw(1.0), default)
    assert np.abs(draw(0.0) - healthy).max() < 1e-6 < np.abs(default - healthy).max()


def test_attacks_perturb_within_epsilon_in_pixel_units_and_not_at_zero():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    target = AttackTarget(network)
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(target(x), network(normalize(x)))  # the normalisation is inside
    y = torch.tensor([0, 1, 2, 0])
    for name in ("fgsm", "pgd"):
        assert torch.equal(make_attack(name, target, 0.0, 3, 2.5)(x, y), x)
        adversarial = make_attack(name, target, 4 / 255, 3, 2.5)(x, y)
        assert (adversarial - x).abs().max() <= 4 / 255 + 1e-6 and adversarial.min() >= 0 and adversarial.max() <= 1
        assert not torch.equal(adversarial, x)
    binary = AttackTarget(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), output=1)
    assert binary(x).shape == (4, 2) and torch.all(binary(x)[:, 0] == 0)


def test_a_clinical_blocks_training_overrides_the_configs_for_its_models_only():
    from readrace.experiments import clinical

    config = {"training": {"epochs": 8, "lr": 0.001},
              "datasets": {"x": {"modality": "cxr", "split": {"train": 0.5, "validation": 0.2, "test": 0.3}}},
              "experiments": [{"kind": "clinical", "train": ["x"], "archs": ["resnet18"], "perturbations": ["none"],
                               "seeds": [0], "training": {"epochs": 3}}]}
    model = clinical.ClinicalModel("x", "resnet18", "none", 0)
    assert clinical.training(config, model) == {"epochs": 3, "lr": 0.001}
    # Without a block training, the config's own dict: a clinical model trained before the
    # option existed keeps its params and is not retrained.
    config["experiments"][0]["training"] = {}
    assert clinical.training(config, model) == config["training"]
