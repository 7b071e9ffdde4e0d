"""Stratified evaluation: an image model's test predictions re-scored within strata of BMI,
age and sex (and their intersections), without retraining.

Each stratum is scored by the common scorer (:func:`readrace.evaluation.scoring.score_predictions`,
the patient bootstrap) on the predictions of its images, the strata's variables joined from
the test dataset's manifest by ``image_id``. A stratum is reported whatever its size, with
its patients per race; the rule for an interval: a stratum with fewer than ``min_patients``
patients of some class of the task gets its AUC (where defined) but no interval, and
``too_small`` true. Images whose stratum variable is missing form no stratum of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import combinations
import numpy as np
import pandas as pd

from readrace.evaluation.predictions import Predictions
from readrace.evaluation.scoring import score_predictions

#: Default band edges: the WHO BMI categories and the paper's five age bins.
DEFAULT_BANDS: dict[str, list[float]] = {"bmi": [18.5, 25.0, 30.0], "age": [40.0, 50.0, 60.0, 70.0]}

STRATUM_COLUMNS: tuple[str, ...] = ("stratifier", "stratum", "too_small")


def band_labels(edges: Sequence[float]) -> list[str]:
    """Names of the bands cut at ``edges``: ``<18.5``, ``18.5-25``, ..., ``>=30``."""
    edges = list(edges)
    names = [f"<{edges[0]:g}"]
    names += [f"{low:g}-{high:g}" for low, high in zip(edges, edges[1:])]
    return names + [f">={edges[-1]:g}"]


def stratum_values(manifest: pd.DataFrame, variable: str, bands: dict[str, list[float]]) -> pd.Series:
    """The stratum of each manifest row for one variable (index: image_id); missing: NaN.
    Banded variables use ``bands[variable]`` (left-closed bands), others their own values."""
    values = manifest.set_index("image_id")[variable]
    if variable not in bands:
        return values.astype(object).where(values.notna(), np.nan)
    edges = list(bands[variable])
    numeric = pd.to_numeric(values, errors="coerce")
    codes = np.digitize(numeric.to_numpy(dtype=float), edges)
    labels = band_labels(edges)
    names = np.array(labels, dtype=object)
    out = pd.Series(names[codes], index=values.index, dtype=object).where(numeric.notna(), np.nan)
    # Ordered, so that strata are listed (and plotted) low to high, not alphabetically.
    return out.astype(pd.CategoricalDtype(labels, ordered=True))


def stratify(
    predictions: Predictions,
    manifest: pd.DataFrame,
    *,
    variables: Sequence[str],
    bands: dict[str, list[float]],
    intersections: bool,
    min_patients: int,
    n_boot: int,
    seed: int,
    confidence: float,
) -> pd.DataFrame:
    """Scores of every stratum of each variable (and each pair, with ``intersections``).

    One row per (stratifier, stratum, level, class), with the scores' columns, ``too_small``,
    and ``patients_{class}``, the patients of each class in the stratum. The unstratified
    score comes first (stratifier ``all``).
    """
    table = predictions.table
    present = [v for v in variables if v in manifest]
    strata = pd.DataFrame({v: stratum_values(manifest, v, bands) for v in present})
    joined = table.join(strata, on="image_id")
    groups: list[tuple[str, ...]] = [(v,) for v in present]
    if intersections:
        groups += list(combinations(present, 2))
    frames = [_scored(predictions, table, "all", "all", min_patients, n_boot, seed, confidence)]
    for group in groups:
        usable = joined.dropna(subset=list(group))
        for values, rows in usable.groupby(list(group), sort=True, observed=True):
            values = values if isinstance(values, tuple) else (values,)
            name = " & ".join(f"{v}={value}" for v, value in zip(group, values))
            frames.append(_scored(predictions, rows[table.columns], " x ".join(group), name,
                                  min_patients, n_boot, seed, confidence))
    return pd.concat(frames, ignore_index=True)


def _scored(predictions: Predictions, rows: pd.DataFrame, stratifier: str, stratum: str, min_patients: int,
            n_boot: int, seed: int, confidence: float) -> pd.DataFrame:
    task = predictions.task
    patients = rows.groupby("label")["patient_id"].nunique()
    counts = {f"patients_{name}": int(patients.get(k, 0)) for k, name in enumerate(task.classes)}
    too_small = min(counts.values()) < min_patients
    scores = score_predictions(replace(predictions, table=rows.reset_index(drop=True)),
                               n_boot=n_boot, seed=seed, confidence=confidence)
    if too_small:
        scores[["ci_low", "ci_high"]] = np.nan
    scores.insert(0, "stratifier", stratifier)
    scores.insert(1, "stratum", stratum)
    scores.insert(2, "too_small", too_small)
    for column, value in counts.items():
        scores[column] = value
    return scores

