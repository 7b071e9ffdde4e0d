"""The localisation table (long CSV, one row per model, level and class) and its figures: AUC
as a 3x3 heat map for the patch and occlusion experiments, lung vs non-lung bars, and the
saliency panels.

Table columns: the model id and coordinate (``train_dataset``, ``test_dataset``, ``arch``,
``seed``, ``protocol``, ``perturbation``), what the perturbation did (``experiment``: full,
lung, nonlung, patch, occlude, occlude-salient; ``region``: the region kept or removed: all,
lung, nonlung, cell-R-C, salient; ``row``, ``col`` of a grid cell), and the scores' columns
(:data:`readrace.evaluation.scoring.SCORE_COLUMNS`, patient-bootstrap intervals).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from readrace.evaluation.figures import DPI
from readrace.evaluation.scoring import SCORE_COLUMNS
from readrace.transforms.perturbation_ids import GRID_CELLS, grid_bounds, parse_perturbation_id

KEY_COLUMNS: tuple[str, ...] = ("model", "train_dataset", "test_dataset", "arch", "seed", "protocol", "perturbation")
TABLE_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, "experiment", "region", "row", "col", *SCORE_COLUMNS)
_SORT = ["train_dataset", "test_dataset", "arch", "seed", "protocol", "perturbation"]
#: The heat-map panels: (experiment, protocol, title).
GRID_PANELS = (("patch", "retrain", "one cell kept (trained so)"), ("occlude", "retrain", "one cell removed (trained so)"),
               ("occlude", "test-time", "one cell removed (test time only)"))


def describe(pid: str) -> dict[str, object]:
    """``experiment``, ``region``, ``row``, ``col`` of a localisation perturbation id."""
    parsed = parse_perturbation_id(pid)
    if parsed.name in ("patch", "occlude"):
        row, col = parsed.params
        return {"experiment": parsed.name, "region": f"cell-{row}-{col}", "row": row, "col": col}
    region = {"none": "all", "lung": "lung", "nonlung": "nonlung", "occlude-salient": "salient"}[pid]
    return {"experiment": "full" if pid == "none" else pid, "region": region, "row": pd.NA, "col": pd.NA}


def localisation_table(score_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The score files of localisation models as the long table, in a stable order."""
    frames = [pd.read_csv(path) for path in score_paths]
    if not frames:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    table = pd.concat(frames, ignore_index=True)
    described = pd.DataFrame([describe(pid) for pid in table["perturbation"]], index=table.index)
    table = pd.concat([table, described], axis=1)
    table["row"], table["col"] = table["row"].astype("Int64"), table["col"].astype("Int64")
    return table[list(TABLE_COLUMNS)].sort_values(_SORT, kind="stable").reset_index(drop=True)


def _primary(table: pd.DataFrame) -> pd.DataFrame:
    """Macro rows at each model's first level (image or slice: the unit the model sees)."""
    first = table.groupby("model", sort=False)["level"].transform("first")
    return table[(table["level"] == first) & (table["class"] == "macro")]


def _save(figure: Figure, out_path: str | os.PathLike) -> None:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=DPI, format="png", bbox_inches="tight")


def _models(rows: pd.DataFrame) -> list[tuple]:
    return list(rows[["train_dataset", "arch", "seed"]].drop_duplicates().itertuples(index=False, name=None))


def grid_auc(table: pd.DataFrame) -> dict[tuple, np.ndarray]:
    """(train_dataset, arch, seed, experiment, protocol) -> 3x3 macro AUCs (NaN: not run)."""
    rows = _primary(table)
    rows = rows[rows["experiment"].isin(["patch", "occlude"])]
    grids: dict[tuple, np.ndarray] = {}
    for _, r in rows.iterrows():
        key = (r["train_dataset"], r["arch"], r["seed"], r["experiment"], r["protocol"])
        grids.setdefault(key, np.full((GRID_CELLS, GRID_CELLS), np.nan))[int(r["row"]), int(r["col"])] = r["auc"]
    return grids


def plot_grid(table: pd.DataFrame, out_path: str | os.PathLike) -> None:
    """Macro AUC of each grid cell as a heat map: a row of panels per (train, arch, seed),
    one panel per experiment and protocol that ran; the full model's AUC in the title."""
    grids = grid_auc(table)
    primary = _primary(table)
    models = _models(primary[primary["experiment"].isin(["patch", "occlude"])])
    panels = [p for p in GRID_PANELS if any(k[3:] == p[:2] for k in grids)]
    figure = Figure(figsize=(3.2 * max(len(panels), 1), 3.0 * max(len(models), 1)))
    if not models:
        figure.text(0.5, 0.5, "no grid experiments in this run", ha="center")
    for i, model in enumerate(models):
        full = primary[(primary[["train_dataset", "arch", "seed"]].apply(tuple, axis=1) == model)
                       & (primary["experiment"] == "full")]["auc"]
        for j, (experiment, protocol, title) in enumerate(panels):
            ax = figure.add_subplot(len(models), len(panels), i * len(panels) + j + 1)
            grid = grids.get((*model, experiment, protocol), np.full((GRID_CELLS, GRID_CELLS), np.nan))
            ax.imshow(np.ma.masked_invalid(grid), vmin=0.5, vmax=1.0, cmap="viridis")
            for (r, c), value in np.ndenumerate(grid):
                ax.text(c, r, "-" if np.isnan(value) else f"{value:.2f}", ha="center", va="center",
                        color="white" if np.isnan(value) or value < 0.8 else "black", fontsize=9)
            ax.set_xticks(range(GRID_CELLS)), ax.set_yticks(range(GRID_CELLS))
            reference = f"; full {full.iloc[0]:.2f}" if len(full) else ""
            ax.set_title(f"{model[0]} {model[1]} s{model[2]}\n{title}{reference}", fontsize=8)
    _save(figure, out_path)


def plot_lung(table: pd.DataFrame, out_path: str | os.PathLike) -> None:
    """Macro AUC with its interval for the full image, lungs only and lungs removed, per
    protocol: a panel per (train, arch, seed)."""
    rows = _primary(table)
    rows = rows[rows["experiment"].isin(["full", "lung", "nonlung"])]
    models = _models(rows[rows["experiment"] != "full"])
    figure = Figure(figsize=(4.5 * max(len(models), 1), 3.2))
    if not models:
        figure.text(0.5, 0.5, "no lung / non-lung experiments in this run", ha="center")
    bars = [("full", "test-time", "full image"), ("lung", "test-time", "lungs only\n(test time)"),
            ("nonlung", "test-time", "lungs removed\n(test time)"), ("lung", "retrain", "lungs only\n(trained so)"),
            ("nonlung", "retrain", "lungs removed\n(trained so)")]
    for i, model in enumerate(models):
        ax = figure.add_subplot(1, len(models), i + 1)
        mine = rows[rows[["train_dataset", "arch", "seed"]].apply(tuple, axis=1) == model]
        labels, values, low, high = [], [], [], []
        for experiment, protocol, label in bars:
            hit = mine[(mine["experiment"] == experiment) & (mine["protocol"] == protocol)]
            if len(hit):
                labels.append(label)
                values.append(hit["auc"].iloc[0])
                low.append(hit["auc"].iloc[0] - hit["ci_low"].iloc[0])
                high.append(hit["ci_high"].iloc[0] - hit["auc"].iloc[0])
        ax.bar(range(len(values)), values, yerr=[low, high], capsize=3, color="tab:blue")
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("macro AUC (95% CI)")
        ax.set_title(f"{model[0]} {model[1]} seed {model[2]}", fontsize=9)
    _save(figure, out_path)


def plot_saliency(maps: dict[str, dict[str, np.ndarray]], out_path: str | os.PathLike) -> None:
    """Mean Grad-CAM per class over the mean test image of the class, with the 3x3 grid; a
    row per (model, test dataset). ``maps``: label -> the arrays of a maps.npz."""
    n_cols = max((len(m["classes"]) for m in maps.values()), default=1)
    figure = Figure(figsize=(2.4 * n_cols, 2.6 * max(len(maps), 1)))
    for i, (label, m) in enumerate(maps.items()):
        for k, name in enumerate(m["classes"]):
            ax = figure.add_subplot(len(maps), n_cols, i * n_cols + k + 1)
            if np.isnan(m["mean_maps"][k]).all():
                ax.text(0.5, 0.5, "no test images", ha="center", transform=ax.transAxes)
            else:
                ax.imshow(m["mean_images"][k], cmap="gray", vmin=0, vmax=1)
                ax.imshow(m["mean_maps"][k], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            height, width = m["mean_maps"].shape[1:]
            for start, _ in grid_bounds(height)[1:]:
                ax.axhline(start - 0.5, color="white", linewidth=0.6)
            for start, _ in grid_bounds(width)[1:]:
                ax.axvline(start - 0.5, color="white", linewidth=0.6)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{label}\n{name}", fontsize=7)
    _save(figure, out_path)
