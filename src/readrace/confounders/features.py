"""Feature sets of the tabular confounder models, and the policy for missing and uncertain labels.

A feature set is named by an id that goes into the model id (so a change reruns only its
models): ``bmi``, ``density``, ``density_age``, ``findings``, ``combined`` (age + sex + the
14 findings + BMI), or ``hist{N}`` (an ``N``-bin intensity histogram of the cached image:
the paper's "average pixel thresholds").

Finding labels are 1 (positive), 0 (negative), -1 (uncertain) or missing (not mentioned).
:class:`LabelPolicy` says what each of the last two becomes:

``uncertain``: ``category`` (default: its own one-hot category, so the model may use it),
``zero`` (the paper's choice) or ``one``.
``missing``: ``zero`` (default: CheXpert's blank means "not mentioned", read as negative,
as the paper did) or ``category`` (its own category).

Patient variables (age, BMI) that are missing are imputed by the training median, with a
missing-indicator column, inside the pipeline (:mod:`readrace.confounders.tabular`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from readrace.labels import FINDINGS

#: Named feature sets: (numeric columns, categorical columns, finding labels?).
FEATURE_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "bmi": (("bmi",), (), False),
    "density": ((), ("breast_density",), False),
    "density_age": (("age",), ("breast_density",), False),
    "findings": ((), (), True),
    "combined": (("age", "bmi"), ("sex",), True),
}

_HISTOGRAM = re.compile(r"^hist(\d+)$")
UNCERTAIN_CHOICES = ("category", "zero", "one")
MISSING_CHOICES = ("zero", "category")


@dataclass(frozen=True)
class LabelPolicy:
    """What uncertain (-1) and missing finding labels become (see the module doc)."""

    uncertain: str = "category"
    missing: str = "zero"

    def __post_init__(self) -> None:
        if self.uncertain not in UNCERTAIN_CHOICES:
            raise ValueError(f"confounders.labels.uncertain: {self.uncertain!r} is not one of {', '.join(UNCERTAIN_CHOICES)}")
        if self.missing not in MISSING_CHOICES:
            raise ValueError(f"confounders.labels.missing: {self.missing!r} is not one of {', '.join(MISSING_CHOICES)}")

    def encode(self, values: pd.Series) -> pd.Series:
        """One finding column as category strings: positive, negative, uncertain, missing."""
        numeric = pd.to_numeric(values, errors="coerce")
        out = pd.Series("negative", index=values.index, dtype=object)
        out[numeric == 1] = "positive"
        uncertain = numeric == -1
        out[uncertain] = {"category": "uncertain", "zero": "negative", "one": "positive"}[self.uncertain]
        out[numeric.isna()] = "missing" if self.missing == "category" else "negative"
        return out


@dataclass(frozen=True)
class FeatureSet:
    """The columns one tabular model reads: numeric, categorical, or histogram bins."""

    name: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    findings: bool = False
    histogram_bins: int = 0

    @property
    def needs_images(self) -> bool:
        return self.histogram_bins > 0

    def manifest_columns(self) -> list[str]:
        return [*self.numeric, *self.categorical, *(FINDINGS if self.findings else ())]


def feature_set(name: str) -> FeatureSet:
    """The feature set an id names; ValueError listing the known ids otherwise."""
    if name in FEATURE_SETS:
        numeric, categorical, findings = FEATURE_SETS[name]
        return FeatureSet(name, numeric, categorical, findings)
    match = _HISTOGRAM.fullmatch(name)
    if match and 2 <= int(match[1]) <= 256:
        return FeatureSet(name, histogram_bins=int(match[1]))
    raise ValueError(
        f"unknown confounder feature set {name!r}; expected one of {', '.join(FEATURE_SETS)} or hist{{N}} (2 <= N <= 256)"
    )


def intensity_histograms(images: np.ndarray, rows: np.ndarray, bins: int) -> np.ndarray:
    """Each cached image's intensity histogram over [0, 1] in ``bins`` equal bins, as
    fractions of its pixels (so images of any size compare)."""
    out = np.empty((len(rows), bins), dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for k, row in enumerate(np.asarray(rows)):
        counts, _ = np.histogram(np.asarray(images[row], dtype=np.float32), bins=edges)
        out[k] = counts / max(counts.sum(), 1)
    return out


def feature_table(rows: pd.DataFrame, features: FeatureSet, policy: LabelPolicy,
                  images: np.ndarray | None = None) -> pd.DataFrame:
    """The model's input columns for manifest ``rows`` (index kept): numeric columns as
    floats (missing as NaN), categorical ones as strings (missing as NaN), findings encoded
    by ``policy``, or the histogram bins ``h000``.. of the cached images."""
    if features.needs_images:
        if images is None:
            raise ValueError(f"feature set {features.name!r} reads the cache; no images were given")
        values = intensity_histograms(images, rows["cache_index"].to_numpy(), features.histogram_bins)
        return pd.DataFrame(values, index=rows.index, columns=[f"h{k:03d}" for k in range(features.histogram_bins)])
    missing = [column for column in features.manifest_columns() if column not in rows]
    if missing:
        raise KeyError(
            f"feature set {features.name!r} needs the manifest column(s) {', '.join(missing)}, which this dataset lacks"
        )
    table = pd.DataFrame(index=rows.index)
    for column in features.numeric:
        table[column] = pd.to_numeric(rows[column], errors="coerce").astype(float)
    for column in features.categorical:
        table[column] = rows[column].astype(object).where(rows[column].notna(), np.nan)
    if features.findings:
        for column in FINDINGS:
            table[column] = policy.encode(rows[column])
    return table


def policy_of(settings: dict[str, Any]) -> LabelPolicy:
    """The label policy of the config's ``confounders.labels`` block."""
    return LabelPolicy(**settings)
