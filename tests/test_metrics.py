"""Known-answer tests of readrace.evaluation.metrics: rank AUC, one-vs-rest, patient bootstrap, aggregation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from readrace.evaluation.metrics import (
    _rank_plan,
    _weighted_auc,
    aggregate_by,
    bootstrap_auc,
    one_vs_rest_auc,
    roc_auc,
)


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def binormal(n_per_class: int, d: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Negatives ~ N(0, 1), positives ~ N(d, 1): true AUC = Phi(d / sqrt 2)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n_per_class)
    score = rng.normal(size=2 * n_per_class) + d * y
    return y, score


def two_class_probs(score: np.ndarray) -> np.ndarray:
    p1 = 1 / (1 + np.exp(-score))
    return np.column_stack([1 - p1, p1])


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    var = auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)
    return math.sqrt(var / (n_pos * n_neg))


# --- roc_auc -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    score = rng.integers(0, 7, 300) / 7  # heavy ties, within and across classes
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    continuous = rng.normal(size=300) + y
    assert roc_auc(y.astype(bool), continuous) == pytest.approx(
        roc_auc_score(y, continuous), abs=1e-12
    )


def test_roc_auc_hand_computed_values():
    # Pairs (pos, neg): 3>1, 3>2, 2=2 (half), 2>1 -> 3.5 of 4.
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([3.0, 2.0, 2.0, 1.0])) == 0.875
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([1, 2, 3, 4])) == 1.0
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([1, 2, 3, 4])) == 0.0
    assert roc_auc(np.array([1, 0, 1, 0]), np.full(4, 0.3)) == 0.5


def test_roc_auc_is_nan_when_one_class_is_absent():
    assert math.isnan(roc_auc(np.ones(5, dtype=int), np.arange(5.0)))
    assert math.isnan(roc_auc(np.zeros(5, dtype=int), np.arange(5.0)))


def test_roc_auc_rejects_bad_input():
    with pytest.raises(ValueError, match="binary"):
        roc_auc(np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="NaN"):
        roc_auc(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="equal length"):
        roc_auc(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


@pytest.mark.parametrize("seed", range(3))
def test_weighted_auc_equals_sklearn_sample_weight(seed):
    # The bootstrap engine: owner weights spread over images equal sklearn's sample weights.
    rng = np.random.default_rng(seed)
    n, n_owners = 200, 60
    owner = rng.integers(0, n_owners, n)
    y = rng.integers(0, 2, n).astype(bool)
    score = rng.integers(0, 10, n) / 10.0
    counts = rng.integers(0, 4, size=(n_owners, 5)).astype(np.float32)
    got = _weighted_auc(_rank_plan(y, score, owner), counts)
    expected = [roc_auc_score(y, score, sample_weight=counts[owner, r]) for r in range(5)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


# --- one_vs_rest_auc -----------------------------------------------------------------------


def test_class_never_argmax_still_gets_its_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    # Class 2's probability is never the largest, yet it ranks class-2 images perfectly.
    p2 = 0.05 + 0.1 * (y == 2) + rng.uniform(0, 0.05, 600)
    rest = rng.dirichlet([1, 1], 600) * (1 - p2)[:, None]
    probs = np.column_stack([rest, p2])
    assert not (probs.argmax(axis=1) == 2).any()
    aucs = one_vs_rest_auc(y, probs, 3)
    assert aucs.shape == (3,)
    assert aucs[2] == 1.0
    for k in range(3):
        assert aucs[k] == pytest.approx(roc_auc_score(y == k, probs[:, k]), abs=1e-12)


def test_absent_class_gives_nan():
    y = np.array([0, 1, 0, 1, 1])
    probs = np.array(
        [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]]
    )
    aucs = one_vs_rest_auc(y, probs, 3)
    # Class 1: of its 6 (pos, neg) pairs, 5 are won and one (0.3 vs 0.3) is tied.
    assert aucs[0] == 1.0 and aucs[1] == pytest.approx(5.5 / 6) and math.isnan(aucs[2])


def test_one_vs_rest_rejects_label_strings_and_bad_shapes():
    probs = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="integer class codes"):
        one_vs_rest_auc(np.array(["Black", "White", "Black"]), probs, 2)
    with pytest.raises(ValueError, match="class codes 0..1"):
        one_vs_rest_auc(np.array([0, 1, 2]), probs, 2)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        one_vs_rest_auc(np.array([0, 1, 0]), probs, 3)


# --- bootstrap_auc -------------------------------------------------------------------------


def test_bootstrap_binormal_contains_truth_and_matches_hanley_mcneil():
    d = 1.0
    truth = phi(d / math.sqrt(2))  # 0.7602
    y, score = binormal(1000, d, seed=3)
    table = bootstrap_auc(y, two_class_probs(score), np.arange(y.size), ["Black", "White"], seed=1)
    white = table.set_index("class").loc["White"]
    assert white.auc == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert white.ci_low < truth < white.ci_high
    expected_width = 2 * 1.959964 * hanley_mcneil_se(truth, 1000, 1000)
    assert (white.ci_high - white.ci_low) / expected_width == pytest.approx(1.0, abs=0.2)
    # Two classes from complementary probabilities: both one-vs-rest AUCs are the same.
    black = table.set_index("class").loc["Black"]
    assert black.auc == pytest.approx(white.auc) and black.ci_low == pytest.approx(white.ci_low)


def test_bootstrap_table_layout_and_counts():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    patient = np.array(["p1", "p1", "p2", "p3", "p4", "p4", "p5"])
    probs = np.eye(3)[y] * 0.8 + 0.2 / 3
    table = bootstrap_auc(y, probs, patient, ["Asian", "Black", "White"], n_boot=50)
    assert list(table.columns) == ["class", "auc", "ci_low", "ci_high", "n_patients", "n_images"]
    assert list(table["class"]) == ["Asian", "Black", "White", "macro"]
    assert list(table.n_images) == [2, 2, 3, 7]
    assert list(table.n_patients) == [1, 2, 2, 5]


def test_clustered_patients_patient_bootstrap_ignores_copies():
    y1, score1 = binormal(500, 1.0, seed=4)
    patient1 = np.arange(y1.size)
    one = bootstrap_auc(y1, two_class_probs(score1), patient1, ["B", "W"], seed=2)
    # Every patient contributes 10 identical images.
    y10, score10, patient10 = (np.repeat(a, 10) for a in (y1, score1, patient1))
    probs10 = two_class_probs(score10)
    ten = bootstrap_auc(y10, probs10, patient10, ["B", "W"], seed=2)
    naive = bootstrap_auc(y10, probs10, np.arange(y10.size), ["B", "W"], seed=2)

    tables = {"1": one, "10": ten, "naive": naive}
    width = {name: (t.ci_high - t.ci_low).iloc[1] for name, t in tables.items()}
    assert ten.auc.iloc[1] == pytest.approx(one.auc.iloc[1], abs=1e-12)
    assert width["10"] / width["1"] == pytest.approx(1.0, abs=0.15)
    # Resampling images treats the copies as independent: about sqrt(10) too narrow.
    assert width["naive"] < 0.5 * width["10"]
    assert width["naive"] / width["1"] == pytest.approx(1 / math.sqrt(10), abs=0.1)
    assert list(ten.n_patients) == [500, 500, 1000] and list(ten.n_images) == [5000, 5000, 10000]


def test_same_seed_identical_other_seed_different():
    y, score = binormal(200, 0.5, seed=5)
    patient = np.arange(y.size) // 3
    probs = two_class_probs(score)
    a = bootstrap_auc(y, probs, patient, ["B", "W"], n_boot=200, seed=11)
    b = bootstrap_auc(y, probs, patient, ["B", "W"], n_boot=200, seed=11)
    c = bootstrap_auc(y, probs, patient, ["B", "W"], n_boot=200, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.ci_low, c.ci_low)


def test_perfect_separation_gives_one_one():
    y = np.repeat([0, 1, 2], 20)
    probs = np.eye(3)[y] * 0.9 + 0.1 / 3
    table = bootstrap_auc(y, probs, np.arange(60) // 2, ["Asian", "Black", "White"], n_boot=300)
    assert (table.auc == 1.0).all()
    assert (table.ci_low == 1.0).all() and (table.ci_high == 1.0).all()


def test_absent_class_is_nan_and_macro_ignores_it():
    y, score = binormal(300, 1.0, seed=6)
    probs = np.column_stack([two_class_probs(score) * 0.9, np.full(y.size, 0.1)])
    table = bootstrap_auc(y, probs, np.arange(y.size), ["Asian", "Black", "White"], n_boot=200)
    rows = table.set_index("class")
    assert rows.loc["White", ["auc", "ci_low", "ci_high"]].isna().all()
    assert rows.loc["White", "n_images"] == 0
    assert rows.loc["macro", "auc"] == pytest.approx(rows.loc[["Asian", "Black"], "auc"].mean())
    assert rows.loc["Asian", "ci_low"] < rows.loc["macro", "auc"] < rows.loc["Asian", "ci_high"]
    assert not math.isnan(rows.loc["macro", "ci_low"])


def test_bootstrap_macro_interval_is_the_resampled_macro():
    # Three classes with different separations: the macro estimate is their mean and its
    # interval is narrower than the widest class interval (it averages resampled AUCs).
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 900)
    logits = rng.normal(size=(900, 3)) + np.eye(3)[y] * np.array([0.5, 1.0, 2.0])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    table = bootstrap_auc(y, probs, np.arange(900) // 3, ["Asian", "Black", "White"], n_boot=400)
    classes, macro = table.iloc[:3], table.iloc[3]
    assert macro.auc == pytest.approx(classes.auc.mean())
    assert macro.ci_low < macro.auc < macro.ci_high
    assert macro.ci_high - macro.ci_low < (classes.ci_high - classes.ci_low).max()


def test_bootstrap_rejects_mismatched_or_missing_patient():
    probs = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="one entry per image"):
        bootstrap_auc(np.array([0, 1]), probs, np.array([1]), ["B", "W"])
    with pytest.raises(ValueError, match="patient is missing for 1 images"):
        bootstrap_auc(np.array([0, 1]), probs, np.array(["p1", None], dtype=object), ["B", "W"])
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_auc(np.array([], dtype=int), np.empty((0, 2)), np.array([]), ["B", "W"])


# --- aggregate_by --------------------------------------------------------------------------


@pytest.fixture
def slices() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "study_id": ["s1", "s1", "s1", "s2", "s2", "s2"],
            "patient_id": ["p1", "p1", "p1", "p2", "p2", "p2"],
            "race": ["Black", "Black", "Black", "White", "White", "White"],
            "prob_Black": [0.2, 0.4, 0.9, 0.1, 0.3, 0.2],
            "prob_White": [0.8, 0.6, 0.1, 0.9, 0.7, 0.8],
        }
    )


def test_aggregate_by_study_gives_exact_means(slices):
    out = aggregate_by(slices, "study_id", ["prob_Black", "prob_White"])
    assert list(out.columns) == ["study_id", "race", "patient_id", "prob_Black", "prob_White"]
    assert list(out.study_id) == ["s1", "s2"]
    assert list(out.race) == ["Black", "White"] and list(out.patient_id) == ["p1", "p2"]
    np.testing.assert_allclose(out.prob_Black, [0.5, 0.2], atol=1e-12)
    np.testing.assert_allclose(out.prob_White, [0.5, 0.8], atol=1e-12)


def test_aggregate_by_other_column_names(slices):
    renamed = slices.rename(columns={"race": "label", "patient_id": "pid"})
    out = aggregate_by(renamed, "study_id", ["prob_Black"], label="label", patient="pid")
    assert list(out.columns) == ["study_id", "label", "pid", "prob_Black"]


def test_aggregate_by_refuses_two_labels_or_two_patients(slices):
    two_labels = slices.copy()
    two_labels.loc[1, "race"] = "White"
    with pytest.raises(ValueError, match="more than one race.*'s1'"):
        aggregate_by(two_labels, "study_id", ["prob_Black"])
    two_patients = slices.copy()
    two_patients.loc[4, "patient_id"] = "p9"
    with pytest.raises(ValueError, match="more than one patient_id.*'s2'"):
        aggregate_by(two_patients, "study_id", ["prob_Black"])
    no_key = slices.copy()
    no_key.loc[0, "study_id"] = None
    with pytest.raises(ValueError, match="no study_id"):
        aggregate_by(no_key, "study_id", ["prob_Black"])
    with pytest.raises(KeyError, match="prob_Asian"):
        aggregate_by(slices, "study_id", ["prob_Asian"])
