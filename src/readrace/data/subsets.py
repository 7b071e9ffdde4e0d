"""Subsets: which manifest rows a model is trained, selected or tested on.

One selector serves training, prediction and scoring, so that "the validation split of the
patients with no finding" means the same rows in every stage. A :class:`Subset` combines,
all of them optional but the splits:

- ``splits``: the patient-level splits (``train``, ``validation``, ``test``);
- ``where``: row filters, column -> allowed values (``{"No Finding": [1]}``); a missing value
  never matches;
- ``half``: the patients of one model of a balanced membership design
  (:class:`HalfOfPatients`): with ``n_models`` models, every patient is in exactly half of
  them, chosen by a keyed hash, so the design needs no random state and is stable when
  patients are added.

Subsets are values: frozen, comparable, with a canonical :meth:`Subset.to_dict` that goes
into a model's fingerprint, so that a model trained on other rows is never reused. Torch-free.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from readrace.data.splits import SPLITS


@dataclass(frozen=True)
class HalfOfPatients:
    """Model ``model`` of ``n_models`` in a balanced membership design.

    Each patient gets a keyed-hash score per model; it is a member of the ``n_models // 2``
    models where its score ranks lowest. So every patient is IN exactly half of the models
    and OUT of the others, and which half does not depend on any other patient.
    """

    n_models: int
    model: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_models < 2 or self.n_models % 2:
            raise ValueError(f"a membership design needs an even number of models >= 2, got {self.n_models}")
        if not 0 <= self.model < self.n_models:
            raise ValueError(f"model must be in 0..{self.n_models - 1}, got {self.model}")

    def members(self, patient_ids: Iterable[str]) -> np.ndarray:
        """Whether each patient is in this model's half (a boolean array)."""
        ids = list(patient_ids)
        unique = sorted(set(ids))
        key = str(self.seed).encode()
        scores = np.array(
            [[_unit_score(key, f"{pid}\x1f{k}") for k in range(self.n_models)] for pid in unique]
        ).reshape(len(unique), self.n_models)
        # Rank of this model's score among the patient's n_models scores.
        rank = (scores < scores[:, [self.model]]).sum(axis=1)
        member = dict(zip(unique, rank < self.n_models // 2))
        return np.array([member[pid] for pid in ids], dtype=bool)


def _unit_score(key: bytes, message: str) -> float:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Subset:
    """Rows of ``splits`` that pass every ``where`` filter (and, with ``half``, whose patient
    is a member of that half)."""

    splits: tuple[str, ...]
    where: tuple[tuple[str, tuple[Any, ...]], ...] = field(default=())
    half: HalfOfPatients | None = None

    def __post_init__(self) -> None:
        unknown = [split for split in self.splits if split not in SPLITS]
        if not self.splits or unknown:
            raise ValueError(f"a subset names one or more of the splits {', '.join(SPLITS)}, got {self.splits}")

    @classmethod
    def of(cls, splits: str | Sequence[str], where: Mapping[str, Any] | None = None,
           half: HalfOfPatients | None = None) -> Subset:
        """A subset from plain values: ``Subset.of("train", {"No Finding": 1})``."""
        splits = (splits,) if isinstance(splits, str) else tuple(splits)
        filters = []
        for column, allowed in sorted((where or {}).items()):
            values = tuple(allowed) if isinstance(allowed, (list, tuple, set, frozenset)) else (allowed,)
            filters.append((column, values))
        return cls(splits, tuple(filters), half)

    def mask(self, rows: pd.DataFrame) -> np.ndarray:
        """Whether each row of ``rows`` (a manifest, or predictions joined with one) is in."""
        keep = rows["split"].isin(self.splits).to_numpy().copy()
        for column, allowed in self.where:
            if column not in rows:
                raise KeyError(f"subset filter on {column!r}: no such column")
            keep &= rows[column].isin(allowed).to_numpy()
        if self.half is not None:
            keep &= self.half.members(rows["patient_id"])
        return keep

    def select(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows[self.mask(rows)]

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain form (fingerprints, model.pt, logs)."""
        return {
            "splits": list(self.splits),
            "where": {column: list(values) for column, values in self.where},
            "half": None if self.half is None else
            {"n_models": self.half.n_models, "model": self.half.model, "seed": self.half.seed},
        }
