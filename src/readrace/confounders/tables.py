"""The confounders table (long CSV), its Markdown laid out like the paper's Table 2 beside
the image models' AUCs, and the forest plot of the stratified AUCs.

Long table, one row per (experiment, model, test dataset, stratum, level, class):

``experiment``: ``tabular`` (patient variables), ``pixels`` (intensity histograms),
``image`` (the race-detection model, for comparison), ``acquisition`` (that model on the
other datasets of its group: trained at one site, tested at the others), ``retrain-nofinding``,
``retrain-equal``, ``manufacturer`` (a model retrained on one manufacturer's images: on the
whole test split, stratum ``all``, and within each manufacturer's test images),
``stratified``. ``train_manufacturer`` and ``test_manufacturer`` (empty elsewhere) say which
manufacturer trained and which tested. ``features``: the feature set, the retraining subset, or
``image``; ``stratifier`` and ``stratum`` (``all`` outside stratified rows); ``model``: the
estimator or architecture; ``model_id``; ``auc``, ``ci_low``, ``ci_high`` (empty when
``too_small``); ``patients``, ``images``; ``patients_by_class``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from readrace.confounders.acquisition import is_manufacturer_subset
from readrace.confounders.features import feature_set

TABLE_COLUMNS: tuple[str, ...] = (
    "experiment", "train_dataset", "test_dataset", "features", "stratifier", "stratum", "model", "model_id",
    "level", "class", "auc", "ci_low", "ci_high", "too_small", "patients", "images", "patients_by_class",
    "train_manufacturer", "test_manufacturer",
)


def _by_manufacturer(row: pd.Series) -> bool:
    return row["kind"] == "confounders" and is_manufacturer_subset(str(row.get("subset", "")))


def _experiment(row: pd.Series) -> tuple[str, str, str]:
    """(experiment, features, model) of one score row, from its key columns."""
    if row["kind"] == "race_detection":
        if row["test_dataset"] != row["train_dataset"]:
            return "acquisition", "other site", row["arch"]
        return "image", "image", row["arch"]
    if "estimator" in row and isinstance(row.get("estimator"), str):
        kind = "pixels" if feature_set(row["features"]).needs_images else "tabular"
        return kind, row["features"], row["estimator"]
    if _by_manufacturer(row):
        return "manufacturer", row["subset"], row["arch"]
    return f"retrain-{row['subset']}", row["subset"], row["arch"]


def _long(scores: pd.DataFrame, manufacturers: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    named = scores.apply(_experiment, axis=1, result_type="expand")
    out = pd.DataFrame({
        "experiment": named[0], "train_dataset": scores["train_dataset"], "test_dataset": scores["test_dataset"],
        "features": named[1], "stratifier": scores.get("stratifier", "all"), "stratum": scores.get("stratum", "all"),
        "model": named[2], "model_id": scores["model"], "level": scores["level"], "class": scores["class"],
        "auc": scores["auc"], "ci_low": scores["ci_low"], "ci_high": scores["ci_high"],
        "too_small": scores.get("too_small", False), "patients": scores["n_bootstrap_units"],
        "images": scores["n_images"],
    })
    by_class = [c for c in scores.columns if c.startswith("patients_")]
    out["patients_by_class"] = (
        scores[by_class].apply(lambda r: " / ".join(f"{c.removeprefix('patients_')} {int(v)}"
                                                     for c, v in r.items() if pd.notna(v)), axis=1)
        if by_class else ""
    )
    by_manufacturer = (named[0] == "manufacturer").to_numpy()
    out["train_manufacturer"] = [manufacturers.get(d, {}).get(subset, subset) if m else ""
                                 for d, subset, m in zip(out["train_dataset"], named[1], by_manufacturer)]
    out["test_manufacturer"] = [_tested_manufacturer(stratum) if m else ""
                                for stratum, m in zip(out["stratum"], by_manufacturer)]
    return out


def _tested_manufacturer(stratum: str) -> str:
    """``manufacturer=X`` -> X; the whole test split (stratum ``all``) -> ``all``."""
    return stratum.removeprefix("manufacturer=") if stratum.startswith("manufacturer=") else "all"


def gather_confounders(scores: Iterable[str | Path], image_scores: Iterable[str | Path],
                       strata: Iterable[str | Path],
                       manufacturers: Mapping[str, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """The long table from the score files of the tabular and retrained models, the image
    models' score files, and the stratified score files. ``manufacturers``: dataset ->
    retrain subset -> the manufacturer's name (the ids spell only its slug)."""
    manufacturers = manufacturers or {}
    frames = [_long(pd.read_csv(path), manufacturers) for path in [*scores, *image_scores]]
    for path in strata:
        table = pd.read_csv(path)
        long = _long(table, manufacturers)
        if (long["experiment"] == "manufacturer").all():
            # Its unstratified score is already the score file's row.
            long = long[long["stratifier"] == "manufacturer"]
        else:
            long["experiment"] = "stratified"
        frames.append(long)
    if not frames:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    table = pd.concat(frames, ignore_index=True)[list(TABLE_COLUMNS)]
    order = {"tabular": 0, "pixels": 1, "image": 2, "acquisition": 3, "manufacturer": 4, "retrain-nofinding": 5,
             "retrain-equal": 6, "stratified": 7}
    table = table.assign(_order=table["experiment"].map(order).fillna(9))
    return table.sort_values(["_order", "train_dataset", "test_dataset", "features", "model_id", "test_manufacturer"],
                             kind="stable") \
        .drop(columns="_order").reset_index(drop=True)


_ESTIMATOR_NAMES = {"logistic": "Logistic regression", "forest": "Random forest", "xgboost": "XGBoost"}


def _cell(row: pd.Series | None) -> str:
    if row is None or pd.isna(row["auc"]):
        return "n/a"
    if row["too_small"] or pd.isna(row["ci_low"]):
        return f"{row['auc']:.2f} (too few patients for an interval)"
    return f"{row['auc']:.2f} ({row['ci_low']:.2f}-{row['ci_high']:.2f})"


def _primary(table: pd.DataFrame) -> pd.DataFrame:
    """Macro rows at each model's first level (the unit the model sees)."""
    macro = table[table["class"] == "macro"]
    first = macro.groupby(["model_id", "test_dataset"])["level"].transform("first")
    return macro[macro["level"] == first]


def render_markdown(table: pd.DataFrame, coverage: pd.DataFrame | None = None) -> str:
    """Table 2 of the paper, from the long table: macro AUCs (95 % patient-bootstrap
    intervals) at the level the model sees; with ``coverage``
    (:func:`readrace.confounders.variables.variable_coverage`), how many studies have each
    patient variable, by source."""
    rows = _primary(table)
    image = rows[rows["experiment"] == "image"]
    image_auc = {d: _cell(g.iloc[0]) for d, g in image.groupby("train_dataset")}
    lines = ["# Confounders (Table 2)", "",
             "Macro one-vs-rest AUC of race (95 % interval from a patient bootstrap), internal test split.", "",
             "## Race from patient variables and pixel statistics", ""]
    tabular = rows[rows["experiment"].isin(["tabular", "pixels"])]
    # Only the estimators the matrix has get a column.
    estimators = [m for m in _ESTIMATOR_NAMES if m in set(tabular["model"])]
    lines += ["| Dataset | Features | " + " | ".join(_ESTIMATOR_NAMES[m] for m in estimators) + " | Image model |",
              "|---|---|" + "---|" * len(estimators) + "---|"]
    for (dataset, features), group in tabular.groupby(["train_dataset", "features"], sort=True):
        by_model = {m: r for m, r in zip(group["model"], [g for _, g in group.iterrows()])}
        cells = [_cell(by_model.get(m)) for m in estimators]
        lines.append(f"| {dataset} | {features} | " + " | ".join(cells) + f" | {image_auc.get(dataset, 'n/a')} |")
    retrain = rows[rows["experiment"].str.startswith("retrain-") | (rows["experiment"] == "acquisition")]
    if len(retrain):
        lines += ["", "## Image models under confounder control: retrained on a subset, or tested at another site", "",
                  "| Trained on | Subset or site | Tested on | AUC | Image model (own test split, all rows) |", "|---|---|---|---|---|"]
        for _, row in retrain.iterrows():
            lines.append(f"| {row['train_dataset']} | {row['features']} | {row['test_dataset']} | {_cell(row)} | "
                         f"{image_auc.get(row['train_dataset'], 'n/a')} |")
    by_manufacturer = rows[rows["experiment"] == "manufacturer"]
    if len(by_manufacturer):
        lines += ["", "## Acquisition by manufacturer: retrained on one manufacturer's images", "",
                  "Tested on the dataset's test split: all of it, and each manufacturer's images.", "",
                  "| Dataset | Trained on manufacturer | Tested on manufacturer | Patients by race | AUC |",
                  "|---|---|---|---|---|"]
        for _, row in by_manufacturer.iterrows():
            lines.append(f"| {row['train_dataset']} | {row['train_manufacturer']} | {row['test_manufacturer']} | "
                         f"{row['patients_by_class'] or row['patients']} | {_cell(row)} |")
    if coverage is not None and len(coverage):
        lines += ["", "## Patient variables: studies with each, by source", "",
                  "BMI matched in MIMIC-IV omr says how (recorded, from height and weight) or why not; "
                  "dataset: the dataset's own column.", "",
                  "| Dataset | Variable | Source | Studies | Share of studies | Patients | Images |",
                  "|---|---|---|---|---|---|---|"]
        for _, row in coverage.iterrows():
            lines.append(f"| {row['dataset']} | {row['variable']} | {row['source']} | {row['studies']} | "
                         f"{row['share_of_studies']:.1%} | {row['patients']} | {row['images']} |")
    strata = rows[rows["experiment"] == "stratified"]
    if len(strata):
        lines += ["", "## Image models within strata (no retraining)", "",
                  "A stratum with too few patients of some class shows its AUC without an interval.", "",
                  "| Model | Stratifier | Stratum | Patients by race | AUC |", "|---|---|---|---|---|"]
        for _, row in strata.iterrows():
            lines.append(f"| {row['model_id']} | {row['stratifier']} | {row['stratum']} | {row['patients_by_class']} | "
                         f"{_cell(row)} |")
    return "\n".join(lines) + "\n"


def plot_strata(table: pd.DataFrame, out_path: str | os.PathLike) -> None:
    """Forest plot: each stratified model's macro AUC per single-variable stratum, with its
    interval; hollow markers for strata too small for one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _primary(table)
    rows = rows[(rows["experiment"] == "stratified") & ~rows["stratifier"].str.contains(" x ")]
    models = list(dict.fromkeys(rows["model_id"]))
    height = max(2.0, 0.28 * len(rows) + 0.8 * max(len(models), 1))
    figure, axes = plt.subplots(max(len(models), 1), 1, figsize=(7, height), squeeze=False)
    for axis, model in zip(axes[:, 0], models or [None]):
        group = rows[rows["model_id"] == model] if model else rows
        y = np.arange(len(group))[::-1]
        for yi, (_, row) in zip(y, group.iterrows()):
            small = bool(row["too_small"]) or pd.isna(row["ci_low"])
            if not small:
                axis.plot([row["ci_low"], row["ci_high"]], [yi, yi], color="black", lw=1)
            axis.plot(row["auc"], yi, "o", color="black", mfc="white" if small else "black")
        axis.set_yticks(y, [f"{r['stratum']} ({r['patients_by_class']})" for _, r in group.iterrows()], fontsize=7)
        axis.axvline(0.5, color="grey", ls=":", lw=1)
        axis.set_xlim(0.0, 1.0)
        axis.set_title(model or "no stratified model", fontsize=8)
        axis.set_xlabel("macro AUC")
    figure.tight_layout()
    figure.savefig(out_path, dpi=120)
    plt.close(figure)
