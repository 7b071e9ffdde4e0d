"""The membership audit's tables and figures, gathered over every audit of the config.

``membership.csv``: one row per record (``level = record``) and per patient (``level =
patient``) of every audit, with the audit's coordinate, the risk (binormal and empirical
attack AUC; a patient's the max over its records), the control's, the groups (race, sex,
age band), ``exposed`` (among the block's top fraction) and, for records, image statistics.
Pseudonymous ids only. ``membership_summary.md``: per audit the per-record AUCs and the
control, the aggregate attacks (mean and SD over the leave-one-model-out targets), the
disparity tests, the most exposed records, the DP sweep (utility against risk) and the model
size comparison (exposed share and aggregate attack AUC per architecture, no DP).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from readrace.audits.membership import survival
from readrace.experiments.membership import MembershipModel, privacy_epsilon

KEY_COLUMNS = ("audit", "train_dataset", "arch", "privacy", "epsilon", "n_models", "seed")


def _keys(audit: str) -> dict[str, object]:
    model = MembershipModel.from_path(f"{audit}/shadow0")
    epsilon = privacy_epsilon(model.privacy)
    return {"audit": audit, "train_dataset": model.train, "arch": model.arch, "privacy": model.privacy,
            "epsilon": np.inf if epsilon is None else epsilon, "n_models": model.n_models, "seed": model.seed}


def _gather(audits: Sequence[str], files: Sequence[str]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(f).assign(**_keys(a)) for a, f in zip(audits, files)], ignore_index=True)


def _lead(table: pd.DataFrame) -> pd.DataFrame:
    return table[[*KEY_COLUMNS, *[c for c in table.columns if c not in KEY_COLUMNS]]]


def utility(audits: Sequence[str], score_files: Sequence[str]) -> pd.DataFrame:
    """Race macro AUC of shadow 0 of each audit on its dataset's test split (primary level)."""
    rows = []
    for audit, path in zip(audits, score_files):
        scores = pd.read_csv(path)
        macro = scores[scores["class"] == "macro"].iloc[0]
        rows.append({"audit": audit, "race_auc": macro["auc"], "race_auc_ci_low": macro["ci_low"],
                     "race_auc_ci_high": macro["ci_high"]})
    return pd.DataFrame(rows)


def build_tables(audits: Sequence[str], inputs: dict[str, Sequence[str]],
                 parameters: dict[str, int] | None = None) -> dict[str, pd.DataFrame]:
    records = _gather(audits, inputs["records"]).assign(level="record")
    patients = _gather(audits, inputs["patients"]).assign(level="patient")
    exposed_images = set(zip(patients.loc[patients["exposed"], "audit"], patients.loc[patients["exposed"], "most_exposed_image"]))
    records["exposed"] = [(a, i) in exposed_images for a, i in zip(records["audit"], records["image_id"])]
    summary = _gather(audits, inputs["summaries"]).merge(utility(audits, inputs["utility"]), on="audit")
    tables = {
        "records": records, "patients": patients, "summary": _lead(summary),
        "attacks": _lead(_gather(audits, inputs["attacks"])),
        "disparity": _lead(_gather(audits, inputs["disparity"])),
        "tests": _lead(_gather(audits, inputs["tests"])),
    }
    tables["capacity"] = capacity(tables, parameters)
    # The model-size rows (level = capacity) go in membership.csv next to the records and
    # patients, keyed like them by dataset, arch, privacy, N and seed.
    size_rows = tables["capacity"].assign(level="capacity", privacy="none", epsilon=np.inf)
    size_rows["audit"] = [f"membership/{r.train_dataset}/{r.arch}/none/n{r.n_models}/seed{r.seed}"
                          for r in size_rows.itertuples()]
    tables["table"] = _lead(pd.concat([records, patients, size_rows], ignore_index=True))
    return tables


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if n == 0:
        return np.nan, np.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def capacity(tables: dict[str, pd.DataFrame], parameters: dict[str, int] | None = None) -> pd.DataFrame:
    """Model size: per (dataset, arch, N, seed) without DP, the exposed share of patients
    (Wilson 95% interval over the pool's patients), the mean per-record risk AUC, the
    aggregate attacks' AUC (mean and SD over the leave-one-model-out targets) and the race
    AUC with its bootstrap interval; ``parameters`` (arch -> count) orders the rows."""
    s = tables["summary"]
    s = s[~np.isfinite(s["epsilon"])].copy()
    design = tables["attacks"][tables["attacks"]["labels"] == "design"]
    auc = design.groupby(["audit", "attack"])["auc"].agg(["mean", "std"]).unstack("attack")
    rows = []
    for _, row in s.iterrows():
        n_exposed = int(round(row["exposed_share"] * row["patients"]))
        low, high = wilson(n_exposed, int(row["patients"]))
        entry = {"train_dataset": row["train_dataset"], "arch": row["arch"], "n_models": row["n_models"],
                 "seed": row["seed"], "parameters": (parameters or {}).get(row["arch"], np.nan),
                 "patients": int(row["patients"]), "exposed_share": row["exposed_share"],
                 "exposed_share_ci_low": low, "exposed_share_ci_high": high,
                 "mean_risk_auc": row["mean_risk_auc"], "mean_auc_empirical": row["mean_auc_empirical"]}
        for attack in auc.columns.get_level_values("attack").unique():
            entry[f"{attack}_auc"] = auc.loc[row["audit"], ("mean", attack)]
            entry[f"{attack}_auc_sd"] = auc.loc[row["audit"], ("std", attack)]
        entry.update({k: row[k] for k in ("race_auc", "race_auc_ci_low", "race_auc_ci_high")})
        rows.append(entry)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["train_dataset", "n_models", "seed", "parameters", "arch"]).reset_index(drop=True)


def _markdown(table: pd.DataFrame, columns: Sequence[str], digits: int = 3) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    def cell(v: object) -> str:
        return f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v)
    return head + "".join("| " + " | ".join(cell(row[c]) for c in columns) + " |\n" for _, row in table.iterrows())


def render_summary(tables: dict[str, pd.DataFrame], n_exposed: int) -> str:
    s, attacks = tables["summary"], tables["attacks"]
    parts = ["# Membership privacy audit\n",
             "Per-record attack AUC from each record's IN and OUT margins across the N shadow models "
             "(binormal: Phi((mu_in - mu_out) / sqrt(s_in^2 + s_out^2)); empirical: Mann-Whitney). The risk that "
             "ranks records and patients is the separation under the audit's pooled within-side variance, "
             "risk = (mu_in - mu_out) / sqrt(S_in^2 + S_out^2), and risk_auc = Phi(risk); a patient's risk is "
             "the max over its records. Control: IN/OUT replaced by a random balanced split. "
             "Exposed share: patients whose risk_auc reaches `exposed_auc`.\n",
             "## Per-record risk and utility\n",
             _markdown(s, ["audit", "records", "patients", "models", "mean_auc_binormal", "mean_auc_empirical",
                           "binormal_empirical_pearson", "control_mean_auc_binormal", "mean_risk_auc",
                           "control_mean_risk_auc", "exposed_auc", "exposed_share",
                           "control_exposed_share", "race_auc", "race_auc_ci_low", "race_auc_ci_high"]),
             "\n## Aggregate attacks (leave one model out; mean over targets)\n",
             "n_nonmembers is the number of non-member records per target: an FPR below 1/n_nonmembers is "
             "the TPR at zero false positives.\n\n"]
    grouped = attacks.groupby(["audit", "labels", "attack"], sort=False)
    agg = grouped[["auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01"]].mean()
    agg = agg.join(grouped["auc"].std(ddof=1).rename("auc_sd")).join(grouped["n_nonmembers"].min()).join(grouped.size().rename("targets")).reset_index()
    parts.append(_markdown(agg, ["audit", "labels", "attack", "auc", "auc_sd", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01",
                                 "n_nonmembers", "targets"]))
    parts += ["\n## Disparity of the most exposed patients\n",
              "Observed and expected counts of each group among the exposed (top fraction), Pearson residuals "
              "(O - E) / sqrt(E); chi-square and G-squared tests of exposed x group.\n\n",
              _markdown(tables["tests"], [c for c in ["audit", "attribute", "groups", "exposed", "chi2", "chi2_p", "g2",
                                                      "g2_p", "dof"] if c in tables["tests"]]), "\n",
              _markdown(tables["disparity"], ["audit", "attribute", "group", "patients", "observed", "expected",
                                              "pearson_residual"])]
    top = tables["records"].sort_values(["audit", "risk"], ascending=[True, False]).groupby("audit", sort=False).head(n_exposed)
    parts += ["\n## Most exposed records (pseudonymous ids)\n",
              _markdown(top, [c for c in ["audit", "image_id", "patient_id", "race", "sex", "age", "label", "risk", "risk_auc",
                                          "auc_binormal", "auc_empirical", "margin_in", "margin_out", "image_mean", "image_sd"] if c in top])]
    parts += ["\n## DP-SGD sweep (epsilon inf: no DP)\n",
              _markdown(s.sort_values(["train_dataset", "arch", "epsilon"], ascending=[True, True, False]),
                        ["train_dataset", "arch", "epsilon", "race_auc", "exposed_share", "mean_auc_binormal"]
                        + [c for c in s if c == "lira_online_auc"])]
    lira = agg[(agg["labels"] == "design") & (agg["attack"] == "lira_online")][["audit", "auc"]]
    parts.append("\n" + _markdown(s.merge(lira, on="audit").rename(columns={"auc": "lira_online_auc"}),
                                  ["audit", "epsilon", "race_auc", "exposed_share", "lira_online_auc"]))
    size = tables.get("capacity", pd.DataFrame())
    parts += ["\n## Model size (no DP)\n",
              "Per architecture, ordered by its number of parameters: the exposed share of patients (Wilson 95% "
              "interval over the pool's patients), the mean per-record risk AUC, the aggregate attacks' AUC (mean "
              "and SD over the N leave-one-model-out targets) and the race AUC of shadow 0 with its bootstrap "
              "interval.\n\n"]
    parts.append(_markdown(size, [c for c in ["train_dataset", "arch", "parameters", "n_models", "patients", "exposed_share",
                                              "exposed_share_ci_low", "exposed_share_ci_high", "mean_risk_auc",
                                              "lira_online_auc", "lira_online_auc_sd", "rmia_auc", "rmia_auc_sd",
                                              "race_auc", "race_auc_ci_low", "race_auc_ci_high"] if c in size])
                 if not size.empty else "No audit without DP.\n")
    return "".join(parts)


def survival_figure(patients: pd.DataFrame, out: str | Path) -> None:
    """Per audit (panel), the share of patients whose risk is at least a, log y axis, per race."""
    audits = list(dict.fromkeys(patients["audit"]))
    figure = Figure(figsize=(4.5 * len(audits), 3.6), layout="constrained")
    grid = np.linspace(0.5, 1.0, 201)
    for k, audit in enumerate(audits):
        axis = figure.add_subplot(1, len(audits), k + 1)
        part = patients[patients["audit"] == audit]
        floor = 0.5 / max(len(part), 1)
        for name, group in [("all", part), *part.groupby("race")]:
            axis.step(grid, np.maximum(survival(group["risk_auc"].to_numpy(), grid), floor), where="post",
                      label=f"{name} (n={len(group)})", lw=2 if name == "all" else 1)
        axis.set_yscale("log")
        axis.set_xlabel("per-patient risk AUC a")
        axis.set_ylabel("share of patients with AUC >= a")
        axis.set_title(audit.removeprefix("membership/"), fontsize=8)
        axis.legend(fontsize=7)
    figure.savefig(out, dpi=120)


def disparity_figure(disparity: pd.DataFrame, out: str | Path) -> None:
    """Pearson residuals of every group among the most exposed, one panel per audit."""
    audits = list(dict.fromkeys(disparity["audit"]))
    figure = Figure(figsize=(5, 2.2 + 2.4 * len(audits)), layout="constrained")
    for k, audit in enumerate(audits):
        axis = figure.add_subplot(len(audits), 1, k + 1)
        part = disparity[disparity["audit"] == audit]
        labels = [f"{a}: {g}" for a, g in zip(part["attribute"], part["group"])]
        axis.barh(labels, part["pearson_residual"].fillna(0), color=np.where(part["pearson_residual"] > 0, "C3", "C0"))
        axis.axvline(0, color="k", lw=0.8)
        axis.set_xlabel("Pearson residual (O - E) / sqrt(E) among the most exposed")
        axis.set_title(audit.removeprefix("membership/"), fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
    figure.savefig(out, dpi=120)


def dp_figure(summary: pd.DataFrame, attacks: pd.DataFrame, out: str | Path) -> None:
    """Utility (race AUC) against privacy risk (exposed share, LiRA AUC) over epsilon."""
    lira = attacks[(attacks["labels"] == "design") & (attacks["attack"] == "lira_online")].groupby("audit")["auc"].mean()
    s = summary.assign(lira_auc=summary["audit"].map(lira))
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    for k, (column, label) in enumerate([("exposed_share", "exposed share of patients"), ("lira_auc", "LiRA online AUC")]):
        axis = figure.add_subplot(1, 2, k + 1)
        for (train, arch), group in s.groupby(["train_dataset", "arch"]):
            group = group.sort_values("epsilon")
            axis.plot(group[column], group["race_auc"], "o-", label=f"{train} {arch}")
            for _, row in group.iterrows():
                axis.annotate("no DP" if np.isinf(row["epsilon"]) else f"eps {row['epsilon']:g}", (row[column], row["race_auc"]),
                              fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel(label)
        axis.set_ylabel("race AUC (shadow 0, test split)")
        axis.legend(fontsize=7)
    figure.savefig(out, dpi=120)


def capacity_figure(size: pd.DataFrame, out: str | Path) -> None:
    """Exposed share (Wilson 95% interval) and aggregate attack AUC (mean +- SD over the
    targets) per architecture, one line per (dataset, N)."""
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    panels = [("exposed_share", "exposed share of patients"), ("lira_online_auc", "attack AUC (LiRA online, RMIA)")]
    for k, (column, label) in enumerate(panels):
        axis = figure.add_subplot(1, 2, k + 1)
        for (train, n_models), group in size.groupby(["train_dataset", "n_models"], sort=False):
            x = np.arange(len(group))
            if column == "exposed_share":
                error = [group[column] - group["exposed_share_ci_low"], group["exposed_share_ci_high"] - group[column]]
                axis.errorbar(x, group[column], yerr=error, fmt="o-", capsize=3, label=f"{train} N={n_models}")
            else:
                for attack, marker in (("lira_online", "o-"), ("rmia", "s--")):
                    if f"{attack}_auc" in group:
                        axis.errorbar(x, group[f"{attack}_auc"], yerr=group[f"{attack}_auc_sd"], fmt=marker, capsize=3,
                                      label=f"{train} N={n_models} {attack}")
                axis.axhline(0.5, color="k", lw=0.6, ls=":")
            axis.set_xticks(x, [f"{a}\n{p / 1e6:.2g} M" if np.isfinite(p) else a
                                for a, p in zip(group["arch"], group["parameters"])], fontsize=7)
        axis.set_ylabel(label)
        axis.set_xlabel("architecture (parameters)")
        axis.legend(fontsize=7)
    figure.savefig(out, dpi=120)
