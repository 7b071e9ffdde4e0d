"""The paper's Figures 1 and 2: race-detection AUC under Fourier filters, and filtered samples.

Figure 1 (:func:`plot_filter_auc`) plots the internal-validation macro AUC of every model
trained and tested on low-pass (``lpf-d{D}``) or high-pass (``hpf-d{D}``) filtered images
against the filter diameter ``D``; Figure 2 (:func:`plot_filter_samples`) shows what those
filters do to a few sample images. Both read only their inputs (the long
``race_detection.csv`` table, or an array of cached images) and write one PNG.

``D`` is a DIAMETER in frequency bins of the cached image grid: a low-pass filter keeps the
frequencies of radius <= D/2 cycles per image (see :mod:`readrace.transforms.perturbations`); the
axis label says so, because the paper's figure left the unit implicit.

Figures are built as :class:`matplotlib.figure.Figure` objects without pyplot: nothing is
registered in pyplot's global figure list, so no figure can leak across calls, and no
display backend is needed (PNG output goes through Agg).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator


__all__ = [
    "DIAMETER_LABEL",
    "filter_auc_data",
    "plot_filter_auc",
    "filtered_panels",
    "plot_filter_samples",
]

#: The x-axis label of Figure 1: what the filter diameter D is, in which units.
DIAMETER_LABEL = (
    "filter diameter D (frequency bins of the cache grid; keeps radius <= D/2 cycles per image)"
)

DPI = 120

#: Levels at which a dataset's primary AUC is reported, in order of preference: radiographs
#: and mammograms are scored per image, CT per slice. Study-level rows are aggregates.
_PRIMARY_LEVELS: tuple[str, ...] = ("image", "slice")

_FILTER_ID = re.compile(r"(lpf|hpf)-d([1-9][0-9]*)")
_FILTER_NAMES = {"lpf": "low-pass", "hpf": "high-pass"}
_FILTER_ORDER = {"none": 0, "low-pass": 1, "high-pass": 2}
_LINE_KEY = ["train_dataset", "arch", "seed"]
_REQUIRED_COLUMNS = (
    "train_dataset",
    "test_dataset",
    "arch",
    "perturbation",
    "seed",
    "level",
    "class",
    "auc",
    "ci_low",
    "ci_high",
)


def _check_columns(table: pd.DataFrame) -> None:
    missing = [column for column in _REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"the race-detection table lacks column(s) {', '.join(missing)}; "
            f"expected {', '.join(_REQUIRED_COLUMNS)}"
        )


def _primary_level_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Keep, per train dataset, only the rows of its first primary level ("image", "slice")."""
    keep = pd.Series(False, index=rows.index)
    for _, group in rows.groupby("train_dataset", sort=False):
        present = set(group["level"])
        level = next((name for name in _PRIMARY_LEVELS if name in present), None)
        if level is not None:  # a dataset with study-level rows only has no Figure-1 curve
            keep[group.index[group["level"] == level]] = True
    return rows[keep]


def filter_auc_data(table: pd.DataFrame) -> pd.DataFrame:
    """Select the Figure-1 rows of a race-detection table.

    Keeps the internal-validation rows (``train_dataset == test_dataset``) of class
    ``"macro"`` at the primary level of each dataset (``"image"``, else ``"slice"``; study
    rows are aggregates and never plotted) whose perturbation is ``lpf-d{D}`` or
    ``hpf-d{D}``, plus, as the unfiltered baseline, the ``"none"`` rows of the same
    (train_dataset, arch, seed).

    Args:
        table: the long race-detection table (one row per train_dataset, test_dataset, arch,
            perturbation, seed, level, class), e.g. ``results/tables/race_detection.csv``.

    Returns:
        The selected rows with all their columns plus ``filter`` (``"none"``, ``"low-pass"``
        or ``"high-pass"``) and ``diameter`` (the integer D; missing for ``"none"``, nullable
        ``Int64`` dtype), sorted by train_dataset, arch, seed, filter (none, low-pass,
        high-pass) and diameter, with a fresh 0..n-1 index. Empty if nothing matches.

    Raises:
        ValueError: a required column is missing, or two selected rows share one
            (train_dataset, arch, seed, perturbation), which would plot two points for one.
    """
    _check_columns(table)
    rows = table[(table["train_dataset"] == table["test_dataset"]) & (table["class"] == "macro")]
    rows = _primary_level_rows(rows)

    match = rows["perturbation"].astype(str).str.fullmatch(_FILTER_ID.pattern)
    filtered = rows[match].copy()
    parts = filtered["perturbation"].astype(str).str.extract(_FILTER_ID.pattern)
    filtered["filter"] = parts[0].map(_FILTER_NAMES)
    filtered["diameter"] = parts[1].astype("Int64")

    # The baseline only for curves that exist: a "none" row alone has nothing to compare with.
    curves = filtered[_LINE_KEY].drop_duplicates()
    baseline = rows[rows["perturbation"] == "none"].merge(curves, on=_LINE_KEY, how="inner")
    baseline["filter"] = "none"
    baseline["diameter"] = pd.Series(pd.NA, index=baseline.index, dtype="Int64")

    data = pd.concat([baseline, filtered], ignore_index=True)
    duplicated = data.duplicated(_LINE_KEY + ["perturbation"], keep=False)
    if duplicated.any():
        first = data[duplicated].iloc[0]
        raise ValueError(
            "the race-detection table has several internal macro rows for train_dataset="
            f"{first['train_dataset']!r}, arch={first['arch']!r}, seed={first['seed']!r}, "
            f"perturbation={first['perturbation']!r}"
        )
    data = data.sort_values(
        _LINE_KEY + ["filter", "diameter"],
        key=lambda column: column.map(_FILTER_ORDER) if column.name == "filter" else column,
        kind="stable",
    )
    return data.reset_index(drop=True)


def _save(figure: Figure, out_path: str | os.PathLike) -> None:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=DPI, format="png", bbox_inches="tight")


def _line_label(key: tuple) -> str:
    dataset, arch, seed = key
    return f"{dataset} / {arch} / seed {seed}"


def _filter_auc_figure(data: pd.DataFrame) -> Figure:
    """Draw Figure 1 from the output of :func:`filter_auc_data`."""
    figure = Figure(figsize=(11.0, 4.6), layout="tight")
    axes = figure.subplots(1, 2, sharey=True)
    colours = [f"C{i % 10}" for i in range(10)]
    diameters = sorted(int(d) for d in data["diameter"].dropna().unique())

    for index, (key, line) in enumerate(data.groupby(_LINE_KEY, sort=False)):
        colour = colours[index % len(colours)]
        baseline = line[line["filter"] == "none"]
        for ax, name in zip(axes, ("low-pass", "high-pass")):
            points = line[line["filter"] == name]
            if not baseline.empty:
                ax.axhline(baseline["auc"].iloc[0], color=colour, linestyle="--", linewidth=1.0)
            if points.empty:
                continue
            auc = points["auc"].to_numpy(dtype=float)
            # A percentile bootstrap interval need not contain the point estimate; clip so
            # that such a point gets a one-sided bar instead of an error from matplotlib.
            below = np.clip(auc - points["ci_low"].to_numpy(dtype=float), 0.0, None)
            above = np.clip(points["ci_high"].to_numpy(dtype=float) - auc, 0.0, None)
            ax.errorbar(
                points["diameter"].to_numpy(dtype=float),
                auc,
                yerr=np.vstack([below, above]),
                color=colour,
                marker="o",
                markersize=4,
                capsize=3,
                label=_line_label(key),
            )

    for ax, name in zip(axes, ("Low-pass filter", "High-pass filter")):
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1.0)
        ax.set_xscale("log")
        if diameters:
            ax.set_xticks(diameters, [str(d) for d in diameters])
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_ylim(0.4, 1.02)  # a little above 1, so a baseline at AUC 1 stays visible
        ax.set_title(name)
        ax.set_xlabel(DIAMETER_LABEL, fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("AUC (macro, internal test set)")

    handles, labels = [], []
    for ax in axes:  # a curve may exist in one panel only
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    axes[1].legend(
        handles,
        labels,
        title="dashed: unfiltered; dotted: chance",
        fontsize=7,
        title_fontsize=7,
        loc="lower right",
    )
    return figure


def plot_filter_auc(table: pd.DataFrame, out_path: str | os.PathLike) -> pd.DataFrame:
    """Draw the paper's Figure 1 (AUC against filter diameter) and save it as a PNG.

    Two panels, low-pass and high-pass: the internal macro AUC against D on a log axis, with
    the bootstrap CI as error bars, one line per (train_dataset, arch, seed), that model's
    unfiltered AUC as a dashed line of the same colour, and chance (0.5) as a grey dotted
    line; y runs from 0.4 to 1.0.

    Args:
        table: the long race-detection table (see :func:`filter_auc_data`).
        out_path: where to write the PNG (parent folders are created).

    Returns:
        The plotted data: the output of :func:`filter_auc_data`.

    Raises:
        ValueError: the table has no internal macro ``lpf-d{D}`` / ``hpf-d{D}`` rows at
            image or slice level (nothing to plot), or a column is missing.
    """
    data = filter_auc_data(table)
    if not (data["filter"] != "none").any():
        raise ValueError(
            "no low-/high-pass rows to plot: Figure 1 needs internal-validation rows "
            "(train_dataset == test_dataset) of class 'macro' at level 'image' or 'slice' "
            "with perturbation 'lpf-d{D}' or 'hpf-d{D}'; perturbations in the table: "
            f"{', '.join(sorted(map(str, table['perturbation'].unique()))) or '(none)'}"
        )
    _save(_filter_auc_figure(data), out_path)
    return data


def filtered_panels(
    images: np.ndarray, perturbation_ids: Sequence[str], seed: int = 0
) -> np.ndarray:
    """The images of Figure 2: each sample unfiltered, then under each perturbation.

    Each perturbation is applied with :func:`readrace.transforms.perturbations.parse_perturbation` to
    the whole batch as a float32 tensor ``(k, 1, H, W)`` on the CPU, exactly as training does.

    Args:
        images: ``(k, H, W)`` floats in [0, 1] (e.g. rows of the preprocessing cache).
        perturbation_ids: perturbation ids, one column each (``"lpf-d10"``, ``"hpf-d100"``...).
        seed: seeds the generator handed to every perturbation (only random ones use it);
            each perturbation gets a fresh generator, so a column does not depend on the
            columns before it.

    Returns:
        float32 array ``(k, 1 + len(perturbation_ids), H, W)``; ``[:, 0]`` is the input.

    Raises:
        ValueError: ``images`` is not 3-D, is empty, or has values outside [0, 1] or not
            finite; or an id is invalid (message from :func:`parse_perturbation`).
    """
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 3 or array.shape[0] == 0:
        raise ValueError(f"expected images of shape (k, H, W) with k >= 1, got {array.shape}")
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(
            f"expected finite image values in [0, 1], got [{array.min()}, {array.max()}]"
        )
    # torch is imported here, not at the top: the table and figure jobs that import this
    # module would otherwise each pay seconds of torch start-up for nothing.
    import torch

    from readrace.transforms.perturbations import parse_perturbation

    perturbations = [parse_perturbation(pid) for pid in perturbation_ids]  # fail before work

    batch = torch.from_numpy(array)[:, None]
    columns = [array]
    with torch.no_grad():
        for perturb in perturbations:
            generator = torch.Generator().manual_seed(seed)
            columns.append(perturb(batch, generator=generator)[:, 0].numpy())
    return np.stack(columns, axis=1)


def _samples_figure(
    panels: np.ndarray, column_titles: Sequence[str], row_titles: Sequence[str] | None
) -> Figure:
    """Draw Figure 2 from a ``(k, columns, H, W)`` array of panels."""
    rows, columns, height, width = panels.shape
    cell = 2.2  # inches per panel side, so the PNG grows with the number of columns
    figure = Figure(figsize=(cell * columns, cell * rows * height / width), layout="tight")
    axes = figure.subplots(rows, columns, squeeze=False)
    for row in range(rows):
        for column in range(columns):
            ax = axes[row, column]
            ax.imshow(panels[row, column], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(column_titles[column], fontsize=9)
        if row_titles is not None:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=9)
    return figure


def plot_filter_samples(
    images: np.ndarray,
    perturbation_ids: Sequence[str],
    out_path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    seed: int = 0,
) -> None:
    """Draw the paper's Figure 2 (sample images under the filters) and save it as a PNG.

    A grid with one row per sample image: the unfiltered image in the first column (titled
    ``"unfiltered"``), then one column per perturbation id (titled with the id), computed by
    :func:`filtered_panels`. Grey colormap with fixed limits 0 and 1 (so brightness is
    comparable across panels), no ticks.

    Args:
        images: ``(k, H, W)`` floats in [0, 1].
        perturbation_ids: the perturbations to show, one column each.
        out_path: where to write the PNG (parent folders are created).
        titles: optional row labels, one per image (e.g. dataset and race of the sample).
        seed: passed to :func:`filtered_panels` (random perturbations only).

    Raises:
        ValueError: bad images or ids (see :func:`filtered_panels`), or ``titles`` does not
            have one entry per image.
    """
    panels = filtered_panels(images, perturbation_ids, seed=seed)
    if titles is not None and len(titles) != panels.shape[0]:
        raise ValueError(f"titles has {len(titles)} entries for {panels.shape[0]} images")
    column_titles = ["unfiltered", *perturbation_ids]
    _save(_samples_figure(panels, column_titles, titles), out_path)
