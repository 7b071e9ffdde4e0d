"""Tasks: what a model predicts, from which manifest column, and how it is scored.

A :class:`Task` names its targets, its classes in the order of the model's outputs, its type
(``multiclass``, or ``segmentation``: one class per pixel, targets from a mask array rather
than a manifest column; ``multilabel`` for the families to come) and the
levels at which its predictions are scored. Race is one task among several, no longer a
property of the modality: the race task of a dataset takes its classes from the label
registry (:data:`readrace.labels.TASK_CLASSES`) by the dataset's modality.

Levels: the first is the unit the model sees (an ``image``, or a CT ``slice``); a further
level averages the probabilities of the rows that share an id (a CT or mammography
``study``), as the paper did. What a level's ids really are depends on the dataset (NLST's
study is the participant): :func:`level_names` names each level for what it is, from the
dataset descriptor's ``units``.

Torch-free: the Snakefile builds tasks while it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from readrace.labels import task_classes

TASK_TYPES: tuple[str, ...] = ("multiclass", "segmentation")

#: The unit each modality's images are: what the model sees, one row of the manifest.
PRIMARY_LEVEL: dict[str, str] = {"cxr": "image", "xr": "image", "ct": "slice", "mammo": "image"}

#: Aggregate levels per modality: (level, manifest id column whose rows are averaged).
AGGREGATE_LEVELS: dict[str, tuple[tuple[str, str], ...]] = {
    "cxr": (),
    "xr": (),
    "ct": (("study", "study_id"),),
    "mammo": (("study", "study_id"),),
}


@dataclass(frozen=True)
class Level:
    """One scoring level: ``name`` as the task says it, and the id column whose rows are
    averaged into one scored unit (None: every row is scored as it is)."""

    name: str
    by: str | None = None


@dataclass(frozen=True)
class Task:
    """What a model predicts.

    ``target`` is the manifest column the labels come from; ``classes`` are the target
    values, in the order of the model's outputs (output ``k`` means ``classes[k]``); rows
    whose target is not one of them are not part of the task.
    """

    name: str
    type: str
    target: str
    classes: tuple[str, ...]
    levels: tuple[Level, ...]

    def __post_init__(self) -> None:
        if self.type not in TASK_TYPES:
            raise ValueError(f"task {self.name!r}: unknown type {self.type!r}; expected one of {', '.join(TASK_TYPES)}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"task {self.name!r}: needs at least two distinct classes, got {self.classes}")
        if not self.levels or self.levels[0].by is not None:
            raise ValueError(f"task {self.name!r}: the first level must be the unit the model sees")

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    @property
    def probability_columns(self) -> list[str]:
        """The predictions' score columns, ``prob_{class}``, in output order."""
        return [f"prob_{name}" for name in self.classes]

    def rows(self, manifest: pd.DataFrame) -> pd.DataFrame:
        """The manifest rows that belong to the task, with an integer ``label`` column
        (the index of the row's target in :attr:`classes`)."""
        rows = manifest[manifest[self.target].isin(self.classes)].copy()
        codes = {name: k for k, name in enumerate(self.classes)}
        rows["label"] = rows[self.target].map(codes).astype(np.int64)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (it is stored in model.pt, read with ``weights_only=True``)."""
        return {
            "name": self.name,
            "type": self.type,
            "target": self.target,
            "classes": list(self.classes),
            "levels": [{"name": level.name, "by": level.by} for level in self.levels],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(
            name=data["name"],
            type=data["type"],
            target=data["target"],
            classes=tuple(data["classes"]),
            levels=tuple(Level(level["name"], level["by"]) for level in data["levels"]),
        )


def race_task(modality: str) -> Task:
    """Self-reported race, with the classes of the registry for ``modality``."""
    levels = (Level(PRIMARY_LEVEL[modality]),) + tuple(Level(name, by) for name, by in AGGREGATE_LEVELS[modality])
    return Task(name="race", type="multiclass", target="race", classes=task_classes(modality), levels=levels)


def lung_task(modality: str) -> Task:
    """Lung segmentation: background or lung per pixel of the cache grid. Its target is the
    dataset's ground-truth mask array (readrace.paths.TRUTH_MASKS), not a manifest column."""
    return Task(name="lungs", type="segmentation", target="truth_masks", classes=("background", "lung"),
                levels=(Level(PRIMARY_LEVEL[modality]),))


#: Task builders by name; each takes the modality of the dataset the model is trained on.
TASKS = {"race": race_task, "lungs": lung_task}


def make_task(name: str, modality: str) -> Task:
    try:
        builder = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None
    return builder(modality)


#: What a level's id column is, by the dataset descriptor's ``units`` key for it.
_UNIT_OF_COLUMN = {"study_id": "study", "patient_id": "patient"}


def level_names(task: Task, units: dict[str, str]) -> list[str]:
    """Each level of ``task`` named for what it is on a dataset whose descriptor says
    ``units`` (``{"patient": ..., "study": ...}``): a study level over NLST, whose study ids
    are participants, is a ``patient`` level."""
    names = []
    for level in task.levels:
        unit = _UNIT_OF_COLUMN.get(level.by or "")
        names.append(units.get(unit, level.name) if unit else level.name)
    return names
