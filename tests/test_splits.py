"""Patient-level splits: deterministic, stable when patients are added, leakage is an error."""

from __future__ import annotations

import pandas as pd
import pytest

from readrace.data.pseudonym import pseudonymize
from readrace.data.splits import SplitLeakageError, assign_splits, check_patient_splits

FRACTIONS = {"train": 0.6, "validation": 0.1, "test": 0.3}


def _patients(n: int, start: int = 0) -> list[str]:
    return [pseudonymize(f"MRN{i:08d}", "salt-for-tests", "patient") for i in range(start, start + n)]


def test_same_inputs_same_splits():
    ids = _patients(500)
    first = assign_splits(ids, FRACTIONS, "s1")
    again = assign_splits(list(ids), FRACTIONS, "s1")
    assert first.tolist() == again.tolist()
    other_salt = assign_splits(ids, FRACTIONS, "s2")
    assert first.tolist() != other_salt.tolist()


def test_fractions_are_close_to_configured():
    ids = _patients(20000)
    counts = assign_splits(ids, FRACTIONS, "s1").value_counts(normalize=True)
    for split, fraction in FRACTIONS.items():
        assert abs(counts[split] - fraction) < 0.015


def test_adding_patients_moves_no_existing_patient():
    old = _patients(1000)
    new = old + _patients(300, start=5000)
    before = assign_splits(old, FRACTIONS, "s1").tolist()
    after = assign_splits(new, FRACTIONS, "s1").tolist()[: len(old)]
    assert before == after


def test_all_images_of_a_patient_share_a_split():
    ids = [pid for pid in _patients(200) for _ in range(4)]
    splits = assign_splits(ids, FRACTIONS, "s1")
    frame = pd.DataFrame({"patient_id": ids, "split": splits})
    assert frame.groupby("patient_id")["split"].nunique().max() == 1
    check_patient_splits(frame)  # does not raise


def test_a_patient_in_two_splits_is_a_hard_error():
    frame = pd.DataFrame(
        {"patient_id": ["a", "a", "b"], "split": ["train", "test", "train"]}
    )
    with pytest.raises(SplitLeakageError, match="1 patient"):
        check_patient_splits(frame)


def test_pseudonyms_are_keyed_and_stable():
    a = pseudonymize("MRN00000001", "salt-one-1", "patient")
    assert a == pseudonymize("MRN00000001", "salt-one-1", "patient")
    assert a != pseudonymize("MRN00000001", "salt-two-2", "patient")
    assert a != pseudonymize("MRN00000001", "salt-one-1", "study")
    assert len(a) == 16 and "MRN" not in a
    with pytest.raises(ValueError):
        pseudonymize("", "salt-one-1", "patient")
