"""Tasks: what a model predicts, from which manifest column, and how it is scored.

A :class:`Task` names its targets, its classes in the order of the model's outputs, its type
(``multiclass``: one class per image, from the ``target`` column; ``multilabel``: any number
of labels per image, each its own 0/1 manifest column named by the class; ``segmentation``:
one class per pixel, targets from a mask array rather than a manifest column) and the
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

from readrace.labels import FINDINGS, task_classes

TASK_TYPES: tuple[str, ...] = ("multiclass", "multilabel", "segmentation")

#: What a multilabel task does with an uncertain label (CheXpert's -1): count it as absent
#: (``zeros``, U-Zeros), as present (``ones``, U-Ones), or leave it out of the loss and of
#: that label's scores (``ignore``, U-Ignore). A blank label (not mentioned in the report)
#: is absent under every policy, as CheXpert's labeller means it.
UNCERTAIN_POLICIES: tuple[str, ...] = ("zeros", "ones", "ignore")

#: The value of an uncertain label in the tables (CheXpert, MIMIC-CXR's CheXpert labels).
UNCERTAIN = -1.0

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

    A ``multilabel`` task's classes are manifest columns (finding labels, 1 present, 0
    absent, -1 uncertain, blank not mentioned); ``target`` names the task's family
    (``findings``) and ``uncertain`` its policy for -1 (:data:`UNCERTAIN_POLICIES`). One
    label is a binary finding.
    """

    name: str
    type: str
    target: str
    classes: tuple[str, ...]
    levels: tuple[Level, ...]
    uncertain: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TASK_TYPES:
            raise ValueError(f"task {self.name!r}: unknown type {self.type!r}; expected one of {', '.join(TASK_TYPES)}")
        fewest = 1 if self.type == "multilabel" else 2
        if len(self.classes) < fewest or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"task {self.name!r}: needs at least {fewest} distinct classes, got {self.classes}")
        if self.type == "multilabel" and self.uncertain not in UNCERTAIN_POLICIES:
            raise ValueError(f"task {self.name!r}: uncertain-label policy {self.uncertain!r} is not one of "
                             f"{', '.join(UNCERTAIN_POLICIES)}")
        if self.type == "multiclass" and self.uncertain is not None:
            raise ValueError(f"task {self.name!r}: a multiclass task has no uncertain-label policy")
        if not self.levels or self.levels[0].by is not None:
            raise ValueError(f"task {self.name!r}: the first level must be the unit the model sees")

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    @property
    def probability_columns(self) -> list[str]:
        """The predictions' score columns, ``prob_{class}``, in output order."""
        return [f"prob_{name}" for name in self.classes]

    @property
    def truth_columns(self) -> list[str]:
        """A multilabel task's truth columns in predictions, ``true_{label}``, in output order."""
        return [f"true_{name}" for name in self.classes]

    def label_matrix(self, rows: pd.DataFrame) -> np.ndarray:
        """A multilabel task's targets ``(len(rows), n_outputs)``: 1.0 present, 0.0 absent,
        NaN left out (an uncertain label under ``ignore``).

        Raises ValueError naming the column when a label column is missing or holds a
        value other than 1, 0, -1 or blank.
        """
        if self.type != "multilabel":
            raise ValueError(f"task {self.name!r} is {self.type}: it has one integer label per row")
        missing = [name for name in self.classes if name not in rows]
        if missing:
            raise ValueError(f"task {self.name!r}: the manifest has no column {', '.join(map(repr, missing))}")
        values = rows[list(self.classes)].to_numpy(dtype=np.float64)
        known = np.isnan(values) | np.isin(values, (0.0, 1.0, UNCERTAIN))
        if not known.all():
            column = self.classes[int(np.flatnonzero(~known.all(axis=0))[0])]
            raise ValueError(f"task {self.name!r}: column {column!r} holds values other than 1, 0, -1 and blank")
        out = np.where(np.isnan(values), 0.0, values)
        replacement = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}[self.uncertain]
        return np.where(out == UNCERTAIN, replacement, out)

    def rows(self, manifest: pd.DataFrame) -> pd.DataFrame:
        """The manifest rows that belong to the task, with an integer ``label`` column
        (the index of the row's target in :attr:`classes`).

        Multilabel: the rows where at least one label is known (none of them the whole row
        ignored), with ``true_{label}`` columns (:meth:`label_matrix`) and no ``label``.
        """
        if self.type == "multilabel":
            targets = self.label_matrix(manifest)
            keep = ~np.isnan(targets).all(axis=1)
            rows = manifest[keep].copy()
            for k, column in enumerate(self.truth_columns):
                rows[column] = targets[keep, k]
            return rows
        rows = manifest[manifest[self.target].isin(self.classes)].copy()
        codes = {name: k for k, name in enumerate(self.classes)}
        rows["label"] = rows[self.target].map(codes).astype(np.int64)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (it is stored in model.pt, read with ``weights_only=True``).

        ``uncertain`` only where it is set: a multiclass task's dict is what it always was,
        so its models' params and fingerprints do not change."""
        out = {
            "name": self.name,
            "type": self.type,
            "target": self.target,
            "classes": list(self.classes),
            "levels": [{"name": level.name, "by": level.by} for level in self.levels],
        }
        if self.uncertain is not None:
            out["uncertain"] = self.uncertain
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(
            name=data["name"],
            type=data["type"],
            target=data["target"],
            classes=tuple(data["classes"]),
            levels=tuple(Level(level["name"], level["by"]) for level in data["levels"]),
            uncertain=data.get("uncertain"),
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



def findings_task(modality: str, findings: tuple[str, ...] | list[str] | None = None,
                  uncertain: str = "zeros") -> Task:
    """Finding labels as a multilabel task: the 14 CheXpert labels of chest radiographs by
    default, any manifest 0/1 columns otherwise; one label is a binary finding (for another
    modality, where its dataset has one). ``uncertain``: the policy for -1."""
    if findings is None:
        if modality != "cxr":
            raise ValueError(f"a {modality} dataset has no default finding labels; name the finding column(s)")
        findings = FINDINGS
    levels = (Level(PRIMARY_LEVEL[modality]),) + tuple(Level(name, by) for name, by in AGGREGATE_LEVELS[modality])
    return Task(name="findings", type="multilabel", target="findings", classes=tuple(findings), levels=levels,
                uncertain=uncertain)



#: Task builders by name; each takes the modality of the dataset the model is trained on.
TASKS = {"race": race_task, "lungs": lung_task, "findings": findings_task}


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
