"""Subgroup audit of a multilabel finding model, from its predictions.

Per race, sex, age band and their intersections (race x sex, race x age): each label's AUC,
and at a threshold chosen on the VALIDATION predictions (:func:`choose_thresholds`: max F1
per label, or Youden's J) its TPR and FPR; and underdiagnosis, the false-positive rate of
"No Finding": among patients WITH a finding, the share called healthy (Seyyed-Kalantari et
al., Nat Med 2021). Every value has a percentile interval from ONE patient bootstrap of the
test set (:class:`readrace.evaluation.metrics.PatientBootstrap`: patients are resampled, all
their images along), and every (attribute, label, metric) gets a ``gap`` row: the
difference between the groups with the highest and the lowest estimate, those two groups
fixed from the estimates and their difference resampled jointly, so its interval can
contain zero (a max-minus-min recomputed per resample could not). It is still the largest
of several differences: with small groups and no true gap, its interval excludes zero more
often than the nominal 5 %. The ``excess`` columns of a group's row are free of that
selection: the group's value minus that of every other image of the attribute (e.g. Black
patients against all others), resampled jointly, for the group one asks about in advance.

Torch-free: it reads predictions and the manifest only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from readrace.evaluation.metrics import PatientBootstrap, percentile_interval, resampled_auc, resampled_mean, roc_auc
from readrace.evaluation.predictions import Predictions

THRESHOLD_RULES: tuple[str, ...] = ("max_f1", "youden")
NO_FINDING = "No Finding"
METRICS: tuple[str, ...] = ("auc", "tpr", "fpr", "underdiagnosis")
AUDIT_COLUMNS: tuple[str, ...] = (
    "attribute", "group", "label", "metric", "value", "ci_low", "ci_high",
    "excess", "excess_ci_low", "excess_ci_high", "threshold",
    "n_images", "n_patients", "n_positive", "high_group", "low_group",
)


@dataclass(frozen=True)
class AuditSettings:
    """``threshold``: the rule (:data:`THRESHOLD_RULES`); ``age_bands``: the edges of the age
    bands in years (``[40, 65]``: <40, 40-64, 65+); ``min_images``: the fewest images a group
    needs to be reported; ``intersections``: race x sex and race x age too."""

    threshold: str = "max_f1"
    age_bands: tuple[float, ...] = (40.0, 65.0)
    min_images: int = 10
    intersections: bool = True
    underdiagnosis: bool = True

    @classmethod
    def from_config(cls, audit: dict[str, Any]) -> AuditSettings:
        if audit["threshold"] not in THRESHOLD_RULES:
            raise ValueError(f"audit.threshold: {audit['threshold']!r} is not one of {', '.join(THRESHOLD_RULES)}")
        return cls(audit["threshold"], tuple(float(a) for a in audit["age_bands"]), int(audit["min_images"]),
                   bool(audit["intersections"]), bool(audit["underdiagnosis"]))


def choose_threshold(truth: np.ndarray, probability: np.ndarray, rule: str) -> float:
    """The threshold of one label on validation rows (NaN truth left out): the probability
    maximising F1 (``max_f1``) or TPR - FPR (``youden``). NaN when the label has no
    positives or no negatives there."""
    known = ~np.isnan(truth)
    y, p = truth[known].astype(int), probability[known]
    if y.sum() in (0, len(y)):
        return float("nan")
    if rule == "max_f1":
        precision, recall, thresholds = precision_recall_curve(y, p)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
        return float(thresholds[int(np.argmax(f1[:-1]))])
    if rule == "youden":
        fpr, tpr, thresholds = roc_curve(y, p)
        keep = np.isfinite(thresholds)
        return float(thresholds[keep][int(np.argmax((tpr - fpr)[keep]))])
    raise ValueError(f"unknown threshold rule {rule!r}; expected one of {', '.join(THRESHOLD_RULES)}")


def choose_thresholds(validation: Predictions, rule: str) -> dict[str, float]:
    """Each label's threshold, chosen on the validation predictions."""
    task = validation.task
    table = validation.table
    return {name: choose_threshold(table[truth].to_numpy(dtype=float), table[prob].to_numpy(dtype=float), rule)
            for name, truth, prob in zip(task.classes, task.truth_columns, task.probability_columns)}


def age_band(age: pd.Series, edges: Sequence[float]) -> pd.Series:
    """Age bands named by their years: ``<40``, ``40-64``, ``65+`` for edges (40, 65)."""
    names = [f"<{edges[0]:g}"] + [f"{lo:g}-{hi - 1:g}" for lo, hi in zip(edges[:-1], edges[1:])] + [f"{edges[-1]:g}+"]
    codes = np.searchsorted(np.asarray(edges, dtype=float), age.to_numpy(dtype=float), side="right")
    band = pd.Series(np.array(names, dtype=object)[np.minimum(codes, len(names) - 1)], index=age.index)
    return band.where(age.notna())


def subgroup_columns(rows: pd.DataFrame, settings: AuditSettings) -> dict[str, pd.Series]:
    """The attributes audited, each a column of group names (missing: not in any group)."""
    race, sex, age = rows["race"].astype(object), rows["sex"].astype(object), age_band(rows["age"], settings.age_bands)
    attributes = {"race": race, "sex": sex, "age": age}
    if settings.intersections:
        attributes["race x sex"] = (race + " " + sex).where(race.notna() & sex.notna())
        attributes["race x age"] = (race + " " + age).where(race.notna() & age.notna())
    return attributes


def audit_subgroups(test: Predictions, validation: Predictions, manifest: pd.DataFrame, settings: AuditSettings,
                    n_boot: int, seed: int, confidence: float) -> pd.DataFrame:
    """The audit table (:data:`AUDIT_COLUMNS`, led by the predictions' key columns)."""
    task = test.task
    if task.type != "multilabel":
        raise ValueError(f"the subgroup audit reads a finding model's predictions, not a {task.type} task's")
    thresholds = choose_thresholds(validation, settings.threshold)
    people = manifest.set_index("image_id")[["race", "sex", "age"]]
    missing = ~test.table["image_id"].isin(people.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} predicted images are not in the test dataset's manifest")
    rows = test.table.join(people, on="image_id")
    bootstrap = PatientBootstrap.of(rows["patient_id"].to_numpy(), n_boot, seed)
    codes = bootstrap.codes
    blocks = list(bootstrap.blocks())  # a few MB: one pass of resamples serves every statistic
    attributes = subgroup_columns(rows, settings)

    records: list[dict[str, Any]] = []
    resamples: dict[tuple[str, str, str, str], np.ndarray] = {}
    for name, truth_column, prob_column in zip(task.classes, task.truth_columns, task.probability_columns):
        truth = rows[truth_column].to_numpy(dtype=float)
        probability = rows[prob_column].to_numpy(dtype=float)
        threshold = thresholds[name]
        called = probability >= threshold
        metrics = {"auc": None, "tpr": truth == 1, "fpr": truth == 0}
        if name == NO_FINDING and settings.underdiagnosis:
            metrics["underdiagnosis"] = truth == 0  # a finding, called "No Finding"
        for attribute, groups in attributes.items():
            for group in sorted(groups.dropna().unique()):
                member = (groups == group).to_numpy()
                known = member & ~np.isnan(truth)
                if known.sum() < settings.min_images:
                    continue
                rest = ~member & groups.notna().to_numpy()
                for metric, among in metrics.items():
                    estimate = _statistic(metric, member, among, truth, probability, called, threshold, codes, blocks)
                    if estimate is None:
                        continue
                    value, boot = estimate
                    other = _statistic(metric, rest, among, truth, probability, called, threshold, codes, blocks)
                    excess = (value - other[0], *percentile_interval(boot - other[1], confidence)) if other else (np.nan,) * 3
                    low, high = percentile_interval(boot, confidence)
                    resamples[(attribute, name, metric, group)] = boot
                    records.append({"attribute": attribute, "group": group, "label": name, "metric": metric,
                                    "value": value, "ci_low": low, "ci_high": high, "excess": excess[0],
                                    "excess_ci_low": excess[1], "excess_ci_high": excess[2], "threshold": threshold,
                                    "n_images": int(known.sum()), "n_patients": int(np.unique(codes[known]).size),
                                    "n_positive": int((truth[known] == 1).sum()), "high_group": "", "low_group": ""})
    table = pd.DataFrame(records, columns=list(AUDIT_COLUMNS))
    table = pd.concat([table, _gaps(table, resamples, confidence)], ignore_index=True)
    for position, (column, value) in enumerate(test.key_values.items()):
        table.insert(position, column, value)
    return table


def _statistic(metric: str, member: np.ndarray, among: np.ndarray | None, truth: np.ndarray, probability: np.ndarray,
               called: np.ndarray, threshold: float, codes: np.ndarray,
               blocks: list) -> tuple[float, np.ndarray] | None:
    """(estimate, resamples) of one metric on the rows ``member``; None where undefined
    (one class only, no threshold, no row)."""
    if metric == "auc":
        known = member & ~np.isnan(truth)
        y = truth[known] == 1
        if y.all() or not y.any():
            return None
        return roc_auc(y, probability[known]), np.concatenate(
            [resampled_auc(y, probability[known], codes[known], c) for _, c in blocks])
    selected = member & among
    if np.isnan(threshold) or not selected.any():
        return None
    return float(called[selected].mean()), np.concatenate(
        [resampled_mean(called[selected], codes[selected], c) for _, c in blocks])


def _gaps(table: pd.DataFrame, resamples: dict, confidence: float) -> pd.DataFrame:
    """The ``gap`` row of every (attribute, label, metric) with two or more groups."""
    gaps = []
    for (attribute, label, metric), groups in table.groupby(["attribute", "label", "metric"], sort=False):
        if len(groups) < 2:
            continue
        high = groups.loc[groups["value"].idxmax()]
        low = groups.loc[groups["value"].idxmin()]
        boot = resamples[(attribute, label, metric, high["group"])] - resamples[(attribute, label, metric, low["group"])]
        ci_low, ci_high = percentile_interval(boot, confidence)
        gaps.append({"attribute": attribute, "group": "gap", "label": label, "metric": metric,
                     "value": high["value"] - low["value"], "ci_low": ci_low, "ci_high": ci_high,
                     "excess": np.nan, "excess_ci_low": np.nan, "excess_ci_high": np.nan, "threshold": high["threshold"], "n_images": int(groups["n_images"].sum()),
                     "n_patients": int(groups["n_patients"].sum()), "n_positive": int(groups["n_positive"].sum()),
                     "high_group": high["group"], "low_group": low["group"]})
    return pd.DataFrame(gaps, columns=list(AUDIT_COLUMNS))
