"""Patient-level train / validation / test splits.

A patient's split is a pure function of its pseudonymous id and a salt: a keyed hash mapped to
a number in [0, 1) and compared with the cumulative fractions. So the assignment is
deterministic, needs no random state, and stays the same for every existing patient when
patients are added to a dataset. The realised fractions are close to the configured ones
for large datasets and vary by chance for small ones.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "validation", "test")


class SplitLeakageError(RuntimeError):
    """A patient appears in more than one split."""


def split_unit_interval(patient_id: str, salt: str) -> float:
    """Map a patient to a number in [0, 1), uniform over patients."""
    digest = hmac.new(salt.encode(), str(patient_id).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    patient_ids: Iterable[str], fractions: dict[str, float], salt: str
) -> pd.Series:
    """The split of each patient id (a Series aligned with ``patient_ids``)."""
    ids = list(patient_ids)
    cut_train = fractions["train"]
    cut_validation = cut_train + fractions["validation"]
    unique = {pid: split_unit_interval(pid, salt) for pid in set(ids)}
    u = np.array([unique[pid] for pid in ids], dtype=float)
    labels = np.where(u < cut_train, "train", np.where(u < cut_validation, "validation", "test"))
    return pd.Series(labels, index=range(len(ids)), name="split")


def check_patient_splits(manifest: pd.DataFrame) -> None:
    """Raise :class:`SplitLeakageError` when any patient has rows in two splits."""
    per_patient = manifest.groupby("patient_id")["split"].nunique()
    leaking = per_patient[per_patient > 1]
    if len(leaking):
        examples = ", ".join(leaking.index[:5])
        raise SplitLeakageError(
            f"{len(leaking)} patient(s) appear in more than one split (e.g. {examples}); "
            "splits must be by patient"
        )
