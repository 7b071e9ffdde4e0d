"""The one label registry: race categories, task classes and their order, finding labels.

Every stage that needs a class list or a class order reads it from here, so that a model's
output column ``k`` means the same race in training, prediction and every table (the paper's
own code had class orders that differed between models).
"""

from __future__ import annotations

#: Self-reported race categories as they appear in a manifest before task filtering.
RACE_CATEGORIES: tuple[str, ...] = ("Asian", "Black", "White", "Other", "Unknown")

#: Race values excluded from every task, as in the paper (too few patients, or not recorded).
EXCLUDED_RACES: frozenset[str] = frozenset({"Other", "Unknown"})

#: The ethnicity value whose patients are excluded, as in the paper (recorded inconsistently
#: across datasets).
HISPANIC = "Hispanic or Latino"

#: Classes of the race-detection task per modality, in the order of the model's outputs.
#: Chest radiographs: three classes; CT, mammography and other radiographs: Black vs White.
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "cxr": ("Asian", "Black", "White"),
    "ct": ("Black", "White"),
    "mammo": ("Black", "White"),
    "xr": ("Black", "White"),
}

MODALITIES: tuple[str, ...] = tuple(TASK_CLASSES)

#: The 14 CheXpert-style finding labels, with CheXpert's own column names.
FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: BI-RADS breast density categories (a: almost entirely fatty ... d: extremely dense).
BREAST_DENSITY: tuple[str, ...] = ("A", "B", "C", "D")

SEXES: tuple[str, ...] = ("F", "M")

#: Quarantine reason of a race value outside RACE_CATEGORIES. The value itself is left out:
#: reasons are public, and a free-text value could be anything (ingestion keeps it in the
#: private detail).
UNMAPPED_RACE = "excluded: unmapped race value"


def task_classes(modality: str) -> tuple[str, ...]:
    """Return the race classes of the detection task for ``modality``, in output order."""
    try:
        return TASK_CLASSES[modality]
    except KeyError:
        raise ValueError(
            f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}"
        ) from None


def exclusion_reason(race: str | None, ethnicity: str | None) -> str | None:
    """Why a patient with this self-reported race and ethnicity leaves the cohort, or None.

    The reasons are the quarantine strings used by ingestion and the per-dataset summary.
    """
    if ethnicity == HISPANIC:
        return "excluded: Hispanic or Latino ethnicity"
    if race is None or race == "" or race != race:  # NaN-safe
        return "excluded: no race recorded"
    if race in EXCLUDED_RACES:
        return f"excluded: race {race}"
    if race not in RACE_CATEGORIES:
        return UNMAPPED_RACE
    return None
