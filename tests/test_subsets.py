"""Subsets: one selector of rows for training, prediction and scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from readrace.data.subsets import HalfOfPatients, Subset


def _manifest() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": [f"p{i // 2}" for i in range(12)],
        "split": ["train"] * 6 + ["validation"] * 2 + ["test"] * 4,
        "No Finding": [1, 0, 1, np.nan, 1, 1, 0, 1, 1, 1, 0, np.nan],
    })


def test_a_subset_selects_its_splits_and_filters():
    manifest = _manifest()
    assert Subset.of("train").select(manifest).index.tolist() == [0, 1, 2, 3, 4, 5]
    assert Subset.of(["validation", "test"]).select(manifest).index.tolist() == list(range(6, 12))
    no_finding = Subset.of("train", {"No Finding": 1})
    assert no_finding.select(manifest).index.tolist() == [0, 2, 4, 5]  # missing never matches
    assert Subset.of("test", {"No Finding": [0, 1]}).select(manifest).index.tolist() == [8, 9, 10]


def test_subsets_are_values_with_a_canonical_form():
    a = Subset.of("train", {"No Finding": 1, "sex": ["F"]})
    b = Subset.of(("train",), {"sex": "F", "No Finding": [1]})
    assert a == b and a.to_dict() == b.to_dict()
    assert a.to_dict() == {"splits": ["train"], "where": {"No Finding": [1], "sex": ["F"]}, "half": None}


def test_unknown_splits_and_columns_are_refused():
    with pytest.raises(ValueError, match="splits"):
        Subset.of("training")
    with pytest.raises(KeyError, match="BMI"):
        Subset.of("train", {"BMI": 30}).select(_manifest())


def test_every_patient_is_in_exactly_half_of_the_membership_models():
    patients = [f"patient-{i}" for i in range(300)]
    n_models = 8
    membership = np.stack([HalfOfPatients(n_models, k, seed=3).members(patients) for k in range(n_models)])
    assert (membership.sum(axis=0) == n_models // 2).all()
    # Each model holds about half of the patients, and the halves differ.
    assert (np.abs(membership.mean(axis=1) - 0.5) < 0.1).all()
    assert len({row.tobytes() for row in membership}) == n_models
    # A patient's membership does not depend on the others, and the seed changes the design.
    alone = HalfOfPatients(n_models, 2, seed=3).members(patients[:5])
    assert (alone == membership[2, :5]).all()
    assert (HalfOfPatients(n_models, 2, seed=4).members(patients) != membership[2]).any()


def test_a_half_selects_all_images_of_its_patients_together():
    manifest = _manifest().assign(split="train")
    rows = Subset.of("train", half=HalfOfPatients(2, 0)).select(manifest)
    other = Subset.of("train", half=HalfOfPatients(2, 1)).select(manifest)
    assert set(rows["patient_id"]).isdisjoint(other["patient_id"])
    assert len(rows) + len(other) == len(manifest)
    assert rows.groupby("patient_id").size().eq(2).all()
    with pytest.raises(ValueError, match="even number"):
        HalfOfPatients(3, 0)
