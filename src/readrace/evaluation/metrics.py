"""AUCs and patient-level bootstrap confidence intervals, computed from predictions.

Two rules that the paper's own code broke are made structural here:

* AUCs are one-vs-rest for EVERY class of the task, scored from that class's probability
  column. Whether a class is ever the argmax plays no role (the paper's code scored only the
  classes a model predicted).
* Confidence intervals are percentile intervals of a bootstrap that resamples PATIENTS with
  replacement, taking all of a drawn patient's images along (images of one patient are not
  independent). The paper's code reported "2.262 x std" over a handful of runs as a CI.

Labels are integer class codes: ``y == k`` means the class of probability column ``k``
(the order of ``readrace.labels.task_classes``).

The bootstrap is vectorised: a resample is a vector of patient multiplicities, and the AUC
of a resample is the weighted Mann-Whitney statistic with those multiplicities as image
weights, computed for a block of resamples at once from one sort of the scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["roc_auc", "one_vs_rest_auc", "bootstrap_auc", "bootstrap_label_auc", "bootstrap_mean",
           "PatientBootstrap", "resampled_auc", "resampled_mean", "aggregate_by"]

# Resamples are processed in blocks of about this many (resample, image) weights, so that
# memory stays at a few tens of MB whatever the number of images or resamples.
_BLOCK_ELEMENTS = 2_000_000


class _RankPlan(NamedTuple):
    """What a weighted AUC needs from one sort of the scores (reused by every resample)."""

    neg_owner: np.ndarray  # owner of each negative image, in ascending score order
    pos_owner: np.ndarray  # owner of each positive image, in ascending score order
    below: np.ndarray  # per positive: number of negatives scored strictly lower
    below_or_tied: np.ndarray  # per positive: number of negatives scored lower or equal


def _rank_plan(is_pos: np.ndarray, score: np.ndarray, owner: np.ndarray) -> _RankPlan:
    n = score.shape[0]
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    sorted_pos = is_pos[order]
    # Tie groups of the sorted scores: each image's group spans sorted positions [start, end).
    new_group = np.empty(n, dtype=bool)
    new_group[:1] = True
    new_group[1:] = sorted_score[1:] != sorted_score[:-1]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], n)
    neg_before = np.concatenate(([0], np.cumsum(~sorted_pos)))  # negatives among j lowest
    pos_group = group[sorted_pos]
    return _RankPlan(
        neg_owner=owner[order[~sorted_pos]],
        pos_owner=owner[order[sorted_pos]],
        below=neg_before[starts[pos_group]],
        below_or_tied=neg_before[ends[pos_group]],
    )


def _weighted_auc(plan: _RankPlan, counts: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC (ties count one half) for each column of owner weights.

    The weight of an image in column ``r`` is ``counts[owner, r]``: with one owner per image
    and all counts 1 this is the ordinary AUC; with owner = patient and counts = the patients'
    multiplicities in bootstrap resamples, it is the AUC of each resample.

    Args:
        plan: the sorted positives and negatives, from :func:`_rank_plan`.
        counts: (m, b) non-negative weights of the m owners in b weightings. Owner-major
            layout, so that gathering an image's weights copies one contiguous row.

    Returns:
        (b,) AUCs; NaN for a column whose positive or negative weight is zero.
    """
    # cum_neg[j] = weight of the j lowest-scored negatives; the (n, b) image weights never
    # exist, only the negatives' and positives' rows gathered from the owner counts.
    cum_neg = np.zeros((plan.neg_owner.shape[0] + 1, counts.shape[1]), dtype=counts.dtype)
    np.cumsum(counts[plan.neg_owner], axis=0, out=cum_neg[1:])
    # Per positive: negatives strictly below plus half the tied ones = half the sum of the
    # cumulative negative weight at both ends of its tie group.
    beaten = cum_neg[plan.below]
    beaten += cum_neg[plan.below_or_tied]
    pos_w = counts[plan.pos_owner]
    # The products are exact while below 2**24 in float32 (and otherwise within 6e-8
    # relative); they are accumulated in float64.
    numerator = 0.5 * np.sum(pos_w * beaten, axis=0, dtype=np.float64)
    denominator = pos_w.sum(axis=0, dtype=np.float64) * cum_neg[-1].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _check_scores(score: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(score)):
        raise ValueError(f"{what} contains NaN or infinite values")


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of a binary problem, from ranks (Mann-Whitney U).

    Tied scores count one half, so the result equals ``sklearn.metrics.roc_auc_score``.

    Args:
        y: (n,) binary labels, bool or 0/1; 1 is the positive class.
        score: (n,) finite scores, higher meaning more likely positive.

    Returns:
        The AUC in [0, 1], or NaN when ``y`` has only one class (the AUC is undefined).
    """
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or y.shape != score.shape:
        raise ValueError(
            f"y and score must be 1-D of equal length, got {y.shape} and {score.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must be binary (bool or 0/1)")
    _check_scores(score, "score")
    n = y.shape[0]
    plan = _rank_plan(y.astype(bool), score, np.arange(n))
    return float(_weighted_auc(plan, np.ones((n, 1)))[0])


def _check_multiclass(y: np.ndarray, probs: np.ndarray, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if probs.ndim != 2 or probs.shape != (y.shape[0], n_classes) or y.ndim != 1:
        raise ValueError(
            f"expected y of shape (n,) and probs of shape (n, {n_classes}), "
            f"got {y.shape} and {probs.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"y must hold integer class codes 0..{n_classes - 1} (the probability column "
            f"order), got dtype {y.dtype}"
        )
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must hold class codes 0..{n_classes - 1}, found {y.min()}..{y.max()}")
    _check_scores(probs, "probs")
    return y


def one_vs_rest_auc(y: np.ndarray, probs: np.ndarray, n_classes: int) -> np.ndarray:
    """One-vs-rest AUC of every class: class ``k`` against all others, scored by ``probs[:, k]``.

    Every class gets its AUC, including one that is never the argmax of ``probs``.

    Args:
        y: (n,) integer class codes in ``0..n_classes-1``.
        probs: (n, n_classes) class probabilities (or any scores), column ``k`` for class ``k``.
        n_classes: the number of classes of the task.

    Returns:
        (n_classes,) AUCs; NaN for a class absent from ``y`` (or present in every row).
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = _check_multiclass(y, probs, n_classes)
    return np.array([roc_auc(y == k, probs[:, k]) for k in range(n_classes)])


def _macro(aucs: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN classes; NaN where every class is NaN."""
    defined = ~np.isnan(aucs)
    count = defined.sum(axis=-1)
    total = np.where(defined, aucs, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def bootstrap_auc(
    y: np.ndarray,
    probs: np.ndarray,
    patient: np.ndarray,
    classes: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """One-vs-rest AUCs with percentile confidence intervals from a patient bootstrap.

    Each of the ``n_boot`` resamples draws as many patients as there are, with replacement;
    every image of a drawn patient comes along, once per draw. The interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled AUCs.

    Args:
        y: (n,) integer class codes, ``y == k`` meaning ``classes[k]``.
        probs: (n, len(classes)) probabilities, column ``k`` for ``classes[k]``.
        patient: (n,) patient id of each image (any hashable values).
        classes: the class names, in probability column order.
        n_boot: number of bootstrap resamples.
        seed: seed of the resampling; the same seed gives identical intervals.
        level: confidence level of the interval.

    Returns:
        A DataFrame with one row per class, then a ``"macro"`` row, and the columns
        ``class, auc, ci_low, ci_high, n_patients, n_images``. ``auc`` is the estimate on
        all the data. For a class row, ``n_images`` and ``n_patients`` count the images of
        that class and their distinct patients; for the macro row, all images and patients.

    Notes:
        A class absent from ``y`` has NaN AUC and interval, and the macro AUC (the mean of
        the class AUCs) ignores it, in the estimate and in every resample. A resample in
        which a present class happens to lose all its patients (or all others) is left out
        of that class's interval, which can only happen for very small classes.
    """
    classes = list(classes)
    n_classes = len(classes)
    probs = np.asarray(probs, dtype=np.float64)
    y = _check_multiclass(y, probs, n_classes)
    patient = np.asarray(patient)
    if patient.shape != y.shape:
        raise ValueError(
            f"patient must have one entry per image, got {patient.shape} for {y.shape}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")

    n_images = y.shape[0]
    if n_images == 0:
        raise ValueError("bootstrap_auc needs at least one prediction")
    patient_code, patient_values = pd.factorize(patient)
    if (patient_code < 0).any():  # factorize codes missing values as -1
        raise ValueError(f"patient is missing for {int((patient_code < 0).sum())} images")
    n_patients = len(patient_values)

    estimate = one_vs_rest_auc(y, probs, n_classes)
    present = [k for k in range(n_classes) if not np.isnan(estimate[k])]
    plans = {k: _rank_plan(y == k, probs[:, k], patient_code) for k in present}
    boot = np.full((n_boot, n_classes), np.nan)
    for where, counts in PatientBootstrap(patient_code, n_patients, n_boot, seed, n_images).blocks():
        for k in present:
            boot[where, k] = _weighted_auc(plans[k], counts)

    quantiles = ((1 - level) / 2, (1 + level) / 2)
    rows = []
    for k, name in enumerate(classes):
        in_class = y == k
        low, high = _interval(boot[:, k], quantiles)
        rows.append(
            {
                "class": name,
                "auc": estimate[k],
                "ci_low": low,
                "ci_high": high,
                "n_patients": int(np.unique(patient_code[in_class]).size),
                "n_images": int(in_class.sum()),
            }
        )
    low, high = _interval(_macro(boot), quantiles)
    rows.append(
        {
            "class": "macro",
            "auc": float(_macro(estimate)),
            "ci_low": low,
            "ci_high": high,
            "n_patients": n_patients,
            "n_images": n_images,
        }
    )
    columns = ["class", "auc", "ci_low", "ci_high", "n_patients", "n_images"]
    return pd.DataFrame(rows, columns=columns)


class PatientBootstrap:
    """The patient resamples of one bootstrap, in blocks: every statistic computed from the
    same blocks sees the same resampled patients, so differences between groups, labels or
    models get joint intervals.

    ``codes``: the patient of each row as integers ``0..n_patients - 1``. A resample draws
    ``n_patients`` patients with replacement; :meth:`blocks` yields ``(slice of resamples,
    counts)`` with ``counts[p, r]`` patient ``p``'s multiplicity in resample ``r``.
    """

    def __init__(self, codes: np.ndarray, n_patients: int, n_boot: int, seed: int, n_rows: int) -> None:
        self.codes = np.asarray(codes)
        self.n_patients = n_patients
        self.n_boot = n_boot
        self.seed = seed
        # Patient multiplicities and cumulative weights are integers; float32 holds them
        # exactly below 2**24 and halves the memory traffic of the gathers.
        self.dtype = np.float32 if n_rows < 2**24 else np.float64
        self.block = max(1, _BLOCK_ELEMENTS // max(n_rows, n_patients, 1))

    @classmethod
    def of(cls, patient: np.ndarray, n_boot: int, seed: int) -> PatientBootstrap:
        """A bootstrap over the distinct values of ``patient`` (one per row)."""
        codes, values = pd.factorize(np.asarray(patient))
        if (codes < 0).any():
            raise ValueError(f"patient is missing for {int((codes < 0).sum())} rows")
        return cls(codes, len(values), n_boot, seed, len(codes))

    def blocks(self):
        rng = np.random.default_rng(self.seed)
        n = self.n_patients
        for first in range(0, self.n_boot, self.block):
            size = min(self.block, self.n_boot - first)
            # Multiplicity of every patient in each resample: draw patient indices with
            # replacement and count them, offsetting each resample so that one bincount
            # does all (resample-major, so each bincount row stays in cache); then transpose
            # so that counts[p, r] is patient p's multiplicity in resample r.
            draws = rng.integers(0, n, size=(size, n), dtype=np.int32)
            draws += (np.arange(size, dtype=np.int32) * n)[:, None]
            counts = np.bincount(draws.ravel(), minlength=size * n)
            yield slice(first, first + size), counts.reshape(size, n).T.astype(self.dtype, order="C")


def resampled_auc(is_pos: np.ndarray, score: np.ndarray, owner: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The AUC of rows (``is_pos``, ``score``) in each resample of a :class:`PatientBootstrap`
    block; ``owner`` the rows' patient codes. NaN where a resample lost every positive or
    every negative."""
    _check_scores(np.asarray(score, dtype=np.float64), "score")
    return _weighted_auc(_rank_plan(np.asarray(is_pos, dtype=bool), np.asarray(score, dtype=np.float64),
                                    np.asarray(owner)), counts)


def resampled_mean(values: np.ndarray, owner: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean of ``values`` (one per row) in each resample: a rate when they are 0/1. NaN
    where a resample holds none of the rows."""
    weights = counts[np.asarray(owner)]
    total = weights.sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (weights * np.asarray(values, dtype=np.float64)[:, None]).sum(axis=0) / total, np.nan)


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of bootstrap ``values`` at ``level`` (NaN ones left out)."""
    return _interval(np.asarray(values, dtype=np.float64), ((1 - level) / 2, (1 + level) / 2))


def bootstrap_label_auc(
    truth: np.ndarray,
    probs: np.ndarray,
    patient: np.ndarray,
    labels: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per-label AUCs of a multilabel task with intervals from one patient bootstrap.

    Args:
        truth: (n, L) 1.0 present, 0.0 absent, NaN left out of that label (ignored).
        probs: (n, L) each label's probability.
        patient: (n,) patient of each image; the resamples are shared by all labels, so the
            ``macro`` row (the mean over the labels that have an AUC) is resampled jointly.

    Returns:
        The columns of :func:`bootstrap_auc`: a row per label (``n_images``,
        ``n_patients``: its positives), then ``macro`` (all images and patients).
    """
    labels = list(labels)
    truth = np.asarray(truth, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if truth.shape != probs.shape or truth.ndim != 2 or truth.shape[1] != len(labels):
        raise ValueError(f"expected truth and probs of shape (n, {len(labels)}), got {truth.shape} and {probs.shape}")
    if not (np.isnan(truth) | np.isin(truth, (0.0, 1.0))).all():
        raise ValueError("truth must hold 0, 1 or NaN")
    _check_scores(probs, "probs")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if len(truth) == 0:
        raise ValueError("bootstrap_label_auc needs at least one prediction")
    bootstrap = PatientBootstrap.of(patient, n_boot, seed)
    codes = bootstrap.codes
    estimate = np.full(len(labels), np.nan)
    plans = {}
    for k in range(len(labels)):
        known = ~np.isnan(truth[:, k])
        positive = truth[known, k] == 1
        if 0 < positive.sum() < len(positive):
            estimate[k] = roc_auc(positive, probs[known, k])
            plans[k] = _rank_plan(positive, probs[known, k], codes[known])
    boot = np.full((n_boot, len(labels)), np.nan)
    for where, counts in bootstrap.blocks():
        for k, plan in plans.items():
            boot[where, k] = _weighted_auc(plan, counts)
    rows = []
    for k, name in enumerate(labels):
        positive = truth[:, k] == 1
        low, high = percentile_interval(boot[:, k], level)
        rows.append({"class": name, "auc": estimate[k], "ci_low": low, "ci_high": high,
                     "n_patients": int(np.unique(codes[positive]).size), "n_images": int(positive.sum())})
    low, high = percentile_interval(_macro(boot), level)
    rows.append({"class": "macro", "auc": float(_macro(estimate)), "ci_low": low, "ci_high": high,
                 "n_patients": bootstrap.n_patients, "n_images": len(truth)})
    return pd.DataFrame(rows, columns=["class", "auc", "ci_low", "ci_high", "n_patients", "n_images"])


def bootstrap_mean(
    values: np.ndarray, patient: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """The mean of per-image ``values`` (a Dice, a distance) with a percentile interval from
    the same patient bootstrap as :func:`bootstrap_auc`: each resample draws as many patients
    as there are, with replacement, every image of a drawn patient coming along.

    NaN values (undefined for that image) are left out, of the estimate and of every
    resample. Returns ``{"value", "ci_low", "ci_high", "n_patients", "n_images"}`` (counts
    of the images with a value and their patients).
    """
    values = np.asarray(values, dtype=np.float64)
    patient = np.asarray(patient)
    if patient.shape != values.shape:
        raise ValueError(f"patient must have one entry per value, got {patient.shape} for {values.shape}")
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got {level}, {n_boot}")
    known = ~np.isnan(values)
    values, patient = values[known], patient[known]
    if values.size == 0:
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_patients": 0, "n_images": 0}
    bootstrap = PatientBootstrap.of(patient, n_boot, seed)
    code, n_patients = bootstrap.codes, bootstrap.n_patients
    # Per patient: sum of values and number of images; a resample's mean is a ratio of
    # multiplicity-weighted sums.
    sums = np.bincount(code, weights=values, minlength=n_patients)
    counts = np.bincount(code, minlength=n_patients).astype(np.float64)
    boot = np.empty(n_boot)
    for where, weights in bootstrap.blocks():
        boot[where] = (sums @ weights) / (counts @ weights)
    low, high = _interval(boot, ((1 - level) / 2, (1 + level) / 2))
    return {"value": float(values.mean()), "ci_low": low, "ci_high": high, "n_patients": n_patients,
            "n_images": int(values.size)}


def _interval(values: np.ndarray, quantiles: tuple[float, float]) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(values, quantiles)
    return float(low), float(high)


def aggregate_by(
    df: pd.DataFrame,
    key: str,
    prob_cols: Sequence[str],
    *,
    label: str = "race",
    patient: str = "patient_id",
    count: str | None = None,
) -> pd.DataFrame:
    """Average the probability columns per ``key`` (e.g. a study = the mean of its slices).

    Args:
        df: predictions, one row per image.
        key: the column to aggregate by, e.g. ``"study_id"``.
        prob_cols: the probability columns to average.
        label: the label column, carried along (must be constant within a key).
        patient: the patient column, carried along (must be constant within a key).
        count: a column of per-row counts (images per row, say) to add up per key, so that
            a study knows how many images it averages.

    Returns:
        One row per key value (in order of first appearance) with the columns
        ``key, label, patient, *prob_cols`` (and ``count``, summed).

    Raises:
        KeyError: a named column is missing.
        ValueError: a key has rows with two different labels or two different patients.
    """
    prob_cols = list(prob_cols)
    missing = [c for c in [key, label, patient, *prob_cols, *([count] if count else [])] if c not in df.columns]
    if missing:
        raise KeyError(f"aggregate_by: missing columns {missing}")
    if df[key].isna().any():
        raise ValueError(f"aggregate_by: {int(df[key].isna().sum())} rows have no {key}")
    groups = df.groupby(key, sort=False)
    for column in (label, patient):
        distinct = groups[column].nunique(dropna=False)
        bad = distinct[distinct > 1]
        if not bad.empty:
            raise ValueError(
                f"aggregate_by: {len(bad)} {key} value(s) have more than one {column}, "
                f"e.g. {bad.index[0]!r}"
            )
    out = groups.agg(
        **{label: (label, "first"), patient: (patient, "first")},
        **{c: (c, "mean") for c in prob_cols},
        **({count: (count, "sum")} if count else {}),
    )
    return out.reset_index()
