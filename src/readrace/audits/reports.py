"""The audits' tables and figures, gathered from the per-model files (torch-free)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from readrace.labels import FINDINGS  # noqa: E402

#: The findings the synthetic cohort draws into the image (readrace.synthetic.anatomy); the
#: others are labels only, so a model cannot beat chance on them there.
SYNTHETIC_VISIBLE: tuple[str, ...] = (
    "Cardiomegaly", "Enlarged Cardiomediastinum", "Pleural Effusion", "Lung Opacity", "Edema", "Support Devices",
    "No Finding",  # the absence of every pathology, so partly visible
)


def clinical_table(score_files: Iterable[str]) -> pd.DataFrame:
    """Every clinical model's internal AUC per label (and macro), with its interval."""
    frames = [pd.read_csv(path) for path in score_files]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not table.empty:
        table["drawn_in_synthetic_images"] = table["class"].isin(SYNTHETIC_VISIBLE)
    return table


def gather(files: Iterable[str]) -> pd.DataFrame:
    frames = [pd.read_csv(path) for path in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def gather_with_coordinates(files: Sequence[str], coordinates: Sequence[dict]) -> pd.DataFrame:
    """Concatenate per-audit tables, each led by its coordinate's columns."""
    frames = []
    for path, key in zip(files, coordinates):
        frame = pd.read_csv(path)
        for position, (column, value) in enumerate(key.items()):
            frame.insert(position, column, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_subgroup_gaps(audit: pd.DataFrame, out_path: str | os.PathLike) -> None:
    """The best-to-worst gap of each label's TPR, FPR and underdiagnosis per attribute, with
    its interval, one panel per metric (every model, labels in the registry's order)."""
    gaps = audit[(audit["group"] == "gap") & audit["metric"].isin(["tpr", "fpr", "underdiagnosis", "auc"])]
    metrics = [m for m in ("auc", "tpr", "fpr", "underdiagnosis") if m in set(gaps["metric"])]
    figure, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.5 * max(len(metrics), 1), 5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        part = gaps[gaps["metric"] == metric]
        series = sorted(part.groupby(["model", "attribute"]).groups)
        labels = [f for f in FINDINGS if f in set(part["label"])]
        for j, (model, attribute) in enumerate(series):
            rows = part[(part["model"] == model) & (part["attribute"] == attribute)].set_index("label").reindex(labels)
            y = np.arange(len(labels)) + (j - len(series) / 2) * (0.8 / max(len(series), 1))
            ax.errorbar(rows["value"], y, xerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
                        fmt="o", ms=3, capsize=2, label=f"{model.split('/')[1]}: {attribute}")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
        ax.set_title(f"{metric}: highest minus lowest group")
    if metrics:
        axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out_path, dpi=120)
    plt.close(figure)


def probe_table(score_files: Iterable[str]) -> pd.DataFrame:
    """The probes' race AUCs (macro and per class, primary level) next to the race model's
    own, per clinical model."""
    table = gather(score_files)
    if table.empty:
        return table
    table = table[table["level"] == table.groupby("model")["level"].transform("first")]
    is_probe = table["model"].str.contains("/probe/")
    table["encoder"] = np.where(is_probe, table["model"].str.rsplit("/", n=1).str[-1], "race model (trained)")
    table["clinical_model"] = np.where(is_probe, table["model"].str.split("/probe/").str[0], "")
    columns = ["clinical_model", "encoder", "model", "train_dataset", "test_dataset", "arch", "seed",
               "class", "auc", "ci_low", "ci_high", "n_units", "n_bootstrap_units"]
    return table[[c for c in columns if c in table]].reset_index(drop=True)


def plot_probe_projections(projection_files: Sequence[str], out_path: str | os.PathLike) -> None:
    """2-D PCA of each encoder's test features, coloured by race (one panel per file)."""
    n = max(len(projection_files), 1)
    columns = min(n, 3)
    figure, axes = plt.subplots((n + columns - 1) // columns, columns, figsize=(4 * columns, 3.6 * ((n + columns - 1) // columns)),
                                squeeze=False)
    for ax, path in zip(axes.flat, projection_files):
        data = pd.read_csv(path)
        for race, part in data.groupby("race"):
            ax.scatter(part["pc1"], part["pc2"], s=6, alpha=0.7, label=race)
        parts = str(path).split("/")
        ax.set_title(f"{parts[-4]} {parts[-3]} seed {parts[-2][4:]}: {parts[-1].split('-')[1]}", fontsize=8)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(projection_files):]:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(out_path, dpi=120)
    plt.close(figure)


def plot_robustness(summary: pd.DataFrame, out_path: str | os.PathLike) -> None:
    """AUC against epsilon per race group, one panel per (attacked, measured) pair and
    attack, intervals as bands."""
    auc = summary[summary["metric"] == "auc"]
    panels = sorted(auc.groupby(["attack", "attacked", "measured"]).groups)
    columns = 4
    rows = max(1, (len(panels) + columns - 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax, (attack, attacked, measured) in zip(axes.flat, panels):
        part = auc[(auc["attack"] == attack) & (auc["attacked"] == attacked) & (auc["measured"] == measured)]
        for group, line in part.groupby("group"):
            line = line.groupby("epsilon", as_index=False)[["value", "ci_low", "ci_high"]].mean()
            ax.plot(line["epsilon"], line["value"], marker="o", ms=3, label=group)
            ax.fill_between(line["epsilon"], line["ci_low"], line["ci_high"], alpha=0.15)
        ax.set_title(f"{attack.upper()} on the {attacked} model, {measured} AUC", fontsize=8)
        ax.set_xlabel("epsilon (x 1/255)")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(out_path, dpi=120)
    plt.close(figure)
