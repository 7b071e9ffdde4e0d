"""Membership inference against N shadow models: per-record risk, aggregate attacks, disparity.

Everything here reads the score table of :func:`readrace.audits.shadow.score_records` (one
row per record, model and view; ``member`` from the balanced design) and never retrains.

Per-record risk
    For record r, the margins of the N/2 models that trained on its patient (IN) and of the
    N/2 that did not (OUT), each the mean over the views. The **binormal** attack AUC is
    ``Phi((mu_in - mu_out) / sqrt(s_in^2 + s_out^2))`` (equivalently ``Phi(d / sqrt(2))``
    with ``d = (mu_in - mu_out) / sqrt((s_in^2 + s_out^2) / 2)``), the AUC of two Gaussians
    with those means and SDs (sample SDs, ddof=1, floored at :data:`MIN_SD`). The
    **empirical** AUC is the Mann-Whitney statistic ``P(IN > OUT) + P(IN = OUT) / 2`` over
    the N/2 x N/2 pairs. Both rest on the record's own spread, which N/2 models estimate
    badly at small N (2 per side at N = 4): an ordinary record whose two margins happen to
    agree gets a huge separation, and the empirical AUC ties at 1 for every record whose IN
    margins all beat its OUT ones. The **risk** that ranks records and patients is therefore
    the separation under a *pooled* within-side variance (LiRA's global variance):
    ``risk = (mu_in - mu_out) / sqrt(S_in^2 + S_out^2)``, with ``S_side^2`` the record-wise
    within-side variances averaged over the pool, and ``risk_auc = Phi(risk)`` its binormal
    AUC. It does not saturate before the margins do, and an audit's risks share one scale.
    A patient's risk is the maximum over its records; exposed: ``risk_auc >= exposed_auc``.

Aggregate attacks, leave one model out
    Each model in turn is the target; the others are the shadows of the attack, so no
    attack is tuned on the model it is scored on. Per record, the shadows are balanced to
    N/2 - 1 IN and N/2 - 1 OUT (:func:`balanced_shadows`): otherwise the side a model short
    is the target's side, and a statistic that depends on the counts leaks the label. For a target, every pool record is a
    member or not (the design), and the attack's score ranks them:

    - **LiRA online**: ``sum_v [log N(s_v; mu_in,v, sd_v) - log N(s_v; mu_out,v, sd_v)]``
      over the views, with the record's IN and OUT means among the shadows and a global SD
      per view and side (pooled over records: with few shadows a record's own SD is not
      estimable), widened for the uncertainty of a mean of k shadows (``sd sqrt(1 + 1/k)``).
      Higher likelihood under IN -> member.
    - **LiRA offline**: only the OUT shadows; the one-sided ``sum_v log Phi((s_v -
      mu_out,v) / sd_out,v)``: a margin far *above* what non-members reach -> member. (The
      reference code returned the OUT log-density itself, which ranks members *below*
      non-members.)
    - **RMIA** (online): ``LR(x) = p(x|target) / mean_ref p(x|ref)`` with ``p`` the
      probability of the true label (mean over views) and the shadows as reference models
      (as many IN as OUT);
      the score of x is the fraction of population records z with ``LR(x) / LR(z) >= gamma``.
      The population is the dataset's test split, which no model trained on.

    For each target: the ROC AUC and the TPR at FPR 0.1% and 1% (``sklearn.metrics.roc_curve``;
    the largest TPR at an FPR not above the level). With n non-members the smallest non-zero
    FPR is 1/n, so a level below 1/n is the TPR at zero false positives: the tables say n.
    The summary gives the mean and SD over the N targets.

Control: every record's IN/OUT labels replaced by a random balanced split of the N models
(seeded): the per-record AUCs and LiRA then measure nothing and sit at chance.

Disparity: the ``top_fraction`` most exposed patients by race, sex and age band against their
share of the pool: observed and expected counts, Pearson residuals ``(O - E) / sqrt(E)``, and
the chi-square and G-squared tests of the 2 x groups table (exposed vs not), from
``scipy.stats.chi2_contingency`` (``lambda_=None`` and ``"log-likelihood"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

#: Floor of a per-record SD, so that two identical margins do not give an infinite d.
MIN_SD = 1e-3
FPR_LEVELS = (0.001, 0.01)
ATTACKS = ("lira_online", "lira_offline", "rmia")


# --------------------------------------------------------------------------------------------
# Arrays from the score table


def score_arrays(scores: pd.DataFrame) -> dict[str, Any]:
    """The pool and population as arrays: ``margin`` (R, N, V), ``member`` (R, N), ``prob``
    (R, N) the true-label probability averaged over views, and the record keys."""
    views = sorted(scores["view"].unique())
    n_models = scores["shadow"].nunique()
    out: dict[str, Any] = {"views": views, "n_models": n_models}
    for name, part in scores.groupby("set"):
        part = part.sort_values(["image_id", "shadow", "view"])
        records = part.drop_duplicates("image_id")[["image_id", "patient_id", "label"]].reset_index(drop=True)
        r, n, v = len(records), n_models, len(views)
        if len(part) != r * n * v:
            raise ValueError(f"the score table's {name} set is not complete: {len(part)} rows for "
                             f"{r} records x {n} models x {v} views")
        margin = part["score"].to_numpy(np.float64).reshape(r, n, v)
        member = part["member"].to_numpy(bool).reshape(r, n, v)[:, :, 0]
        logits = part.filter(like="logit_").to_numpy(np.float64)
        logp = logits - _logsumexp(logits)
        p_true = np.exp(logp[np.arange(len(part)), part["label"].to_numpy()]).reshape(r, n, v).mean(axis=2)
        out[name] = {"records": records, "margin": margin, "member": member, "prob": p_true}
    return out


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def check_balanced(member: np.ndarray) -> None:
    """Every record IN exactly half of the models (the design the attacks assume)."""
    counts = member.sum(axis=1)
    if not (counts == member.shape[1] // 2).all():
        raise ValueError(f"the membership design is not balanced: records are IN {sorted(set(counts.tolist()))} "
                         f"of {member.shape[1]} models")


# --------------------------------------------------------------------------------------------
# Per-record risk


def separation(inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """``(mu_in - mu_out) / sqrt(s_in^2 + s_out^2)`` row by row (``(R, k)`` arrays): the
    binormal AUC's argument, which ranks records where the AUC itself saturates at 1."""
    sd_in = np.maximum(inside.std(axis=1, ddof=1), MIN_SD)
    sd_out = np.maximum(outside.std(axis=1, ddof=1), MIN_SD)
    return (inside.mean(axis=1) - outside.mean(axis=1)) / np.hypot(sd_in, sd_out)


def pooled_separation(inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """``(mu_in - mu_out) / sqrt(S_in^2 + S_out^2)`` row by row, ``S_side^2`` the mean over
    rows of the within-row variances (ddof=1): the record's gap on the audit's common scale
    of model-to-model spread (the per-record risk; see the module's docstring)."""
    pooled_in = max(float(np.sqrt(inside.var(axis=1, ddof=1).mean())), MIN_SD)
    pooled_out = max(float(np.sqrt(outside.var(axis=1, ddof=1).mean())), MIN_SD)
    return (inside.mean(axis=1) - outside.mean(axis=1)) / np.hypot(pooled_in, pooled_out)


def binormal_auc(inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """``Phi((mu_in - mu_out) / sqrt(s_in^2 + s_out^2))`` row by row (``(R, k)`` arrays)."""
    return stats.norm.cdf(separation(inside, outside))


def empirical_auc(inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Mann-Whitney ``P(IN > OUT) + P(IN = OUT) / 2`` row by row."""
    greater = (inside[:, :, None] > outside[:, None, :]).mean(axis=(1, 2))
    ties = (inside[:, :, None] == outside[:, None, :]).mean(axis=(1, 2))
    return greater + ties / 2


def record_aucs(margin: np.ndarray, member: np.ndarray) -> pd.DataFrame:
    """Per-record binormal and empirical AUCs from ``margin`` (R, N) or (R, N, V) (views
    averaged) and a balanced ``member`` (R, N)."""
    if margin.ndim == 3:
        margin = margin.mean(axis=2)
    check_balanced(member)
    k = member.shape[1] // 2
    order = np.argsort(~member, axis=1, kind="stable")  # IN models first
    ordered = np.take_along_axis(margin, order, axis=1)
    inside, outside = ordered[:, :k], ordered[:, k:]
    return pd.DataFrame({"auc_binormal": binormal_auc(inside, outside), "auc_empirical": empirical_auc(inside, outside),
                         "separation": separation(inside, outside),
                         "risk": (risk := pooled_separation(inside, outside)), "risk_auc": stats.norm.cdf(risk),
                         "margin_in": inside.mean(axis=1), "margin_out": outside.mean(axis=1)})


def random_membership(n_records: int, n_models: int, seed: int) -> np.ndarray:
    """A random balanced IN/OUT split of the models per record (the control)."""
    rng = np.random.default_rng(seed)
    keys = rng.random((n_records, n_models))
    return keys.argsort(axis=1).argsort(axis=1) < n_models // 2


def patient_risk(records: pd.DataFrame, column: str = "risk") -> pd.DataFrame:
    """A patient's risk: its record with the largest ``column`` (ties by image id); patients
    ranked by it, most exposed first."""
    top = records.sort_values([column, "image_id"], ascending=[False, True]).drop_duplicates("patient_id")
    return top.rename(columns={"image_id": "most_exposed_image"}).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Aggregate attacks


def balanced_shadows(member: np.ndarray, target: int, seed: int = 0) -> np.ndarray:
    """Which models serve as shadows of each record when ``target`` is attacked: every other
    model, less one of the record's larger side, so that every record has N/2 - 1
    IN and N/2 - 1 OUT shadows. In a balanced design the sides of the remaining models
    otherwise reveal the target's label (one side is a model short exactly when the target
    is on it), and any statistic that depends on the counts leaks it (``(R, N)`` mask)."""
    use = np.ones_like(member, dtype=bool)
    use[:, target] = False
    larger = ~member[:, [target]]  # the target's side is the smaller one among the others
    candidates = use & (member == larger)
    # Which one is dropped is drawn at random (seeded by the target): a fixed choice (the
    # first, say) ties the kept shadows to model indices, and models differ in their overall
    # margins, which biases the attack one way under the control.
    keys = np.random.default_rng([seed, target]).random(member.shape)
    drop = np.argmax(np.where(candidates, keys, -1.0), axis=1)
    use[np.arange(len(member)), drop] = False
    return use


def _side_stats(margin: np.ndarray, member: np.ndarray, use: np.ndarray) -> dict[str, np.ndarray]:
    """Per-record IN and OUT means over the shadows ``use`` (R, V), and the SD of a new draw
    about them: a global within-record SD per view and side (pooled, one degree of freedom
    per record spent on its mean), widened to ``sd * sqrt(1 + 1/k)`` for a mean of k
    shadows (the Gaussian predictive spread)."""
    def pooled(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        mask3 = mask[:, :, None]
        count = mask.sum(axis=1)[:, None]
        mean = np.where(count > 0, (margin * mask3).sum(axis=1) / np.maximum(count, 1), np.nan)
        squares = np.where(mask3, (margin - np.nan_to_num(mean)[:, None, :]) ** 2, 0.0).sum(axis=(0, 1))
        dof = int((count - 1).clip(min=0).sum())
        return mean, np.sqrt(squares / max(dof, 1)), dof

    # With one shadow a side (N = 4) no within-side spread exists: the spread of all the
    # record's shadows about their mean stands in (wider, as it holds the IN/OUT effect).
    _, spread, _ = pooled(use)
    out: dict[str, np.ndarray] = {}
    for side, mask in (("in", member & use), ("out", ~member & use)):
        mean, sd, dof = pooled(mask)
        sd = np.maximum(sd if dof > 0 else spread, MIN_SD)
        count = mask.sum(axis=1)[:, None]
        out[f"mu_{side}"] = mean
        out[f"sd_{side}"] = sd[None, :] * np.sqrt(1 + 1 / np.maximum(count, 1))
    return out


def lira_scores(margin: np.ndarray, member: np.ndarray, target: int, online: bool) -> np.ndarray:
    """LiRA's score of every record against model ``target``, the others its shadows
    (balanced per record, :func:`balanced_shadows`); needs N >= 4."""
    if margin.shape[1] < 4:
        raise ValueError(f"LiRA leaving one model out needs at least 4 models, got {margin.shape[1]}")
    s = _side_stats(margin, member, balanced_shadows(member, target))
    x = margin[:, target, :]
    log_out = stats.norm.logpdf(x, s["mu_out"], s["sd_out"])
    if online:
        log_in = stats.norm.logpdf(x, s["mu_in"], s["sd_in"])
        return (log_in - log_out).sum(axis=1)
    return stats.norm.logcdf((x - s["mu_out"]) / s["sd_out"]).sum(axis=1)


def rmia_scores(prob: np.ndarray, population: np.ndarray, member: np.ndarray, target: int,
                gamma: float = 1.0) -> np.ndarray:
    """RMIA's score of every pool record against ``target`` (``prob`` (R, N), ``population``
    (Z, N): true-label probabilities). The reference models of a record are its balanced
    shadows (as many IN as OUT); a population record, IN no model, is referred to every
    other model."""
    eps = 1e-12
    use = balanced_shadows(member, target)
    ref_x = (prob * use).sum(axis=1) / use.sum(axis=1)
    others = [k for k in range(prob.shape[1]) if k != target]
    ratio_x = prob[:, target] / np.maximum(ref_x, eps)
    ratio_z = np.sort(population[:, target] / np.maximum(population[:, others].mean(axis=1), eps))
    return np.searchsorted(ratio_z, ratio_x / gamma, side="right") / len(ratio_z)


def roc_summary(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC and TPR at the FPR levels of one attack on one target, with its point counts."""
    labels = np.asarray(labels, bool)
    fpr, tpr, _ = roc_curve(labels, scores)
    out = {"auc": float(roc_auc_score(labels, scores)), "n_members": int(labels.sum()),
           "n_nonmembers": int((~labels).sum()), "roc_points": int(len(fpr))}
    for level in FPR_LEVELS:
        out[f"tpr_at_fpr_{level:g}"] = float(tpr[fpr <= level].max())
    return out


def aggregate_attacks(arrays: dict[str, Any], member: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (attack, target model): leave-one-model-out LiRA online and offline and
    RMIA. ``member`` replaces the design's labels (the control)."""
    pool = arrays["pool"]
    member = pool["member"] if member is None else member
    population = arrays["population"]["prob"] if "population" in arrays else None
    rows = []
    for target in range(arrays["n_models"]):
        attacks = {"lira_online": lira_scores(pool["margin"], member, target, online=True),
                   "lira_offline": lira_scores(pool["margin"], member, target, online=False)}
        if population is not None:
            attacks["rmia"] = rmia_scores(pool["prob"], population, member, target)
        for name, scores in attacks.items():
            rows.append({"attack": name, "target": target, **roc_summary(member[:, target], scores)})
    return pd.DataFrame(rows)


def summarise_attacks(per_target: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD over the targets, per attack."""
    metrics = ["auc", *[f"tpr_at_fpr_{level:g}" for level in FPR_LEVELS]]
    grouped = per_target.groupby("attack", sort=False)
    table = grouped[metrics].mean().add_suffix("_mean").join(grouped[metrics].std(ddof=1).add_suffix("_sd"))
    table["n_targets"] = grouped.size()
    table["n_nonmembers"] = grouped["n_nonmembers"].min()
    return table.reset_index()


# --------------------------------------------------------------------------------------------
# Disparity


def age_band(age: pd.Series, edges: list[int]) -> pd.Series:
    """``<40``, ``40-59``, ..., ``80+`` from band edges ``[40, 60, 80]``; missing stays missing."""
    labels = [f"<{edges[0]}", *[f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])], f"{edges[-1]}+"]
    return pd.cut(age, [-np.inf, *edges, np.inf], right=False, labels=labels).astype(str).where(age.notna())


def exposed(patients: pd.DataFrame, top_fraction: float, column: str = "risk") -> pd.Series:
    """The ``top_fraction`` most exposed patients by ``column`` (at least one; ties by id)."""
    n_top = max(1, int(round(top_fraction * len(patients))))
    order = patients.sort_values([column, "patient_id"], ascending=[False, True]).index[:n_top]
    return patients.index.isin(order)


def disparity(patients: pd.DataFrame, top: np.ndarray, attributes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per group of each attribute: observed and expected counts among the exposed, Pearson
    residuals; and per attribute the chi-square and G-squared tests."""
    groups, tests = [], []
    for attribute in attributes:
        values = patients[attribute].fillna("missing").astype(str)
        table = pd.crosstab(values, pd.Series(top, index=patients.index, name="exposed")).reindex(columns=[False, True], fill_value=0)
        n_top = table[True].sum()
        expected = table.sum(axis=1) / table.values.sum() * n_top
        for group in table.index:
            e = expected[group]
            groups.append({"attribute": attribute, "group": group, "patients": int(table.loc[group].sum()),
                           "observed": int(table.loc[group, True]), "expected": float(e),
                           "pearson_residual": float((table.loc[group, True] - e) / np.sqrt(e)) if e > 0 else np.nan})
        row = {"attribute": attribute, "groups": len(table), "exposed": int(n_top)}
        if len(table) > 1:
            for name, lam in (("chi2", None), ("g2", "log-likelihood")):
                statistic, p, dof, _ = stats.chi2_contingency(table.to_numpy(), correction=False, lambda_=lam)
                row.update({name: float(statistic), f"{name}_p": float(p), "dof": int(dof)})
        tests.append(row)
    return pd.DataFrame(groups), pd.DataFrame(tests)


def survival(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fraction of ``values`` at or above each point of ``grid``."""
    values = np.sort(np.asarray(values))
    return 1 - np.searchsorted(values, grid, side="left") / max(len(values), 1)


# --------------------------------------------------------------------------------------------
# The audit of one set of shadow models


def audit(scores: pd.DataFrame, manifest: pd.DataFrame, images: np.ndarray, *, top_fraction: float,
          exposed_auc: float, age_bands: list[int], control_seed: int) -> dict[str, pd.DataFrame]:
    """Records and patients with their risk and groups; the aggregate attacks (design and
    control) per target; the summary of one audit."""
    arrays = score_arrays(scores)
    pool = arrays["pool"]
    records = pool["records"].join(record_aucs(pool["margin"], pool["member"]))
    control_member = random_membership(len(records), arrays["n_models"], control_seed)
    control = record_aucs(pool["margin"], control_member)
    records["control_auc_binormal"] = control["auc_binormal"].to_numpy()
    records["control_auc_empirical"] = control["auc_empirical"].to_numpy()
    records["control_separation"] = control["separation"].to_numpy()
    records["control_risk"] = control["risk"].to_numpy()
    records["control_risk_auc"] = control["risk_auc"].to_numpy()
    info = manifest.set_index("image_id")
    for column in ("race", "sex", "age", "view", "split", "cache_index"):
        if column in info:
            records[column] = info.loc[records["image_id"], column].to_numpy()
    pixels = np.asarray(images[records["cache_index"].to_numpy()], dtype=np.float32)
    records["image_mean"] = pixels.mean(axis=(1, 2))
    records["image_sd"] = pixels.std(axis=(1, 2))
    records["age_band"] = age_band(records["age"], age_bands) if "age" in records else "missing"
    records = records.drop(columns=["cache_index"], errors="ignore")

    patients = patient_risk(records)
    patients["exposed"] = exposed(patients, top_fraction)
    attacks = aggregate_attacks(arrays)
    attacks["labels"] = "design"
    control_attacks = aggregate_attacks(arrays, member=control_member)
    control_attacks["labels"] = "control"
    summary = {
        "records": len(records), "patients": len(patients), "models": arrays["n_models"],
        "views": len(arrays["views"]),
        "mean_auc_binormal": records["auc_binormal"].mean(), "mean_auc_empirical": records["auc_empirical"].mean(),
        "binormal_empirical_pearson": records[["auc_binormal", "auc_empirical"]].corr().iloc[0, 1],
        "binormal_empirical_mean_abs_diff": (records["auc_binormal"] - records["auc_empirical"]).abs().mean(),
        "control_mean_auc_binormal": records["control_auc_binormal"].mean(),
        "control_mean_auc_empirical": records["control_auc_empirical"].mean(),
        "exposed_auc": exposed_auc,
        "mean_risk_auc": records["risk_auc"].mean(), "control_mean_risk_auc": records["control_risk_auc"].mean(),
        "exposed_share": float((patients["risk_auc"] >= exposed_auc).mean()),
        "control_exposed_share": float((patient_risk(records, "control_risk")["control_risk_auc"] >= exposed_auc).mean()),
    }
    return {"records": records, "patients": patients, "attacks": pd.concat([attacks, control_attacks], ignore_index=True),
            "summary": pd.DataFrame([summary])}
