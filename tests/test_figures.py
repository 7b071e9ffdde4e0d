"""Known-answer tests of readrace.evaluation.figures on a hand-built race-detection table and images."""

from __future__ import annotations

import itertools
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from readrace.evaluation.figures import (
    DIAMETER_LABEL,
    _filter_auc_figure,
    _samples_figure,
    filter_auc_data,
    filtered_panels,
    plot_filter_auc,
    plot_filter_samples,
)
from readrace.labels import task_classes
from readrace.transforms.perturbations import parse_perturbation

# Deliberately not in sorted order: "lpf-d10" sorts before "lpf-d3" as text, not as numbers.
PERTURBATIONS = ["none", "lpf-d10", "hpf-d100", "lpf-d3", "noise-0.1", "hpf-d20", "res-32"]


def _rows(train: str, arch: str, seed: int, perturbations: list[str]) -> list[dict]:
    """Every row the evaluation stage would write for one model: both test sets, the primary
    level and the study level, every class and the macro mean."""
    primary = {"cxr-a": "image", "ct-b": "slice"}
    modality = {"cxr-a": "cxr", "ct-b": "ct"}
    rows = []
    for pert, test, level in itertools.product(
        perturbations, ("cxr-a", "ct-b"), (primary[train], "study")
    ):
        for cls in (*task_classes(modality[train]), "macro"):
            rows.append(
                {
                    "train_dataset": train,
                    "test_dataset": test,
                    "arch": arch,
                    "perturbation": pert,
                    "seed": seed,
                    "level": level,
                    "class": cls,
                    # Only the selected rows (internal, macro, primary level) get an AUC
                    # below 0.9, so a wrongly selected row shows up in the values.
                    "auc": 0.95 if (test != train or cls != "macro" or level == "study") else None,
                    "n_patients": 50,
                    "n_images": 120,
                }
            )
    return rows


#: Internal macro AUCs at the primary level, per (train_dataset, arch, seed, perturbation).
SELECTED_AUC = {
    ("cxr-a", "resnet34", 0, "none"): 0.88,
    ("cxr-a", "resnet34", 0, "lpf-d3"): 0.61,
    ("cxr-a", "resnet34", 0, "lpf-d10"): 0.72,
    ("cxr-a", "resnet34", 0, "hpf-d20"): 0.83,
    ("cxr-a", "resnet34", 0, "hpf-d100"): 0.79,
    ("cxr-a", "resnet34", 0, "noise-0.1"): 0.85,
    ("cxr-a", "resnet34", 0, "res-32"): 0.86,
    ("cxr-a", "resnet34", 1, "lpf-d10"): 0.70,
    ("ct-b", "resnet34", 0, "none"): 0.81,
    ("ct-b", "resnet34", 0, "lpf-d3"): 0.55,
    ("ct-b", "resnet34", 0, "lpf-d10"): 0.66,
    ("ct-b", "resnet34", 0, "hpf-d20"): 0.77,
    ("ct-b", "resnet34", 0, "hpf-d100"): 0.74,
    ("ct-b", "resnet34", 0, "noise-0.1"): 0.80,
    ("ct-b", "resnet34", 0, "res-32"): 0.80,
    ("ct-b", "densenet121", 0, "none"): 0.84,
}


@pytest.fixture
def table() -> pd.DataFrame:
    rows = (
        _rows("cxr-a", "resnet34", 0, PERTURBATIONS)
        + _rows("ct-b", "resnet34", 0, PERTURBATIONS)
        + _rows("cxr-a", "resnet34", 1, ["lpf-d10"])  # a curve without a baseline
        + _rows("ct-b", "densenet121", 0, ["none"])  # a baseline without a curve
    )
    frame = pd.DataFrame(rows)
    for index, row in frame[frame["auc"].isna()].iterrows():
        key = (row["train_dataset"], row["arch"], row["seed"], row["perturbation"])
        frame.loc[index, "auc"] = SELECTED_AUC[key]
    frame["ci_low"] = frame["auc"] - 0.02
    frame["ci_high"] = frame["auc"] + 0.03
    # Shuffle the rows: the selection must not depend on the input order.
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


EXPECTED = [  # (train_dataset, arch, seed, perturbation, filter, diameter or None)
    ("ct-b", "resnet34", 0, "none", "none", None),
    ("ct-b", "resnet34", 0, "lpf-d3", "low-pass", 3),
    ("ct-b", "resnet34", 0, "lpf-d10", "low-pass", 10),
    ("ct-b", "resnet34", 0, "hpf-d20", "high-pass", 20),
    ("ct-b", "resnet34", 0, "hpf-d100", "high-pass", 100),
    ("cxr-a", "resnet34", 0, "none", "none", None),
    ("cxr-a", "resnet34", 0, "lpf-d3", "low-pass", 3),
    ("cxr-a", "resnet34", 0, "lpf-d10", "low-pass", 10),
    ("cxr-a", "resnet34", 0, "hpf-d20", "high-pass", 20),
    ("cxr-a", "resnet34", 0, "hpf-d100", "high-pass", 100),
    ("cxr-a", "resnet34", 1, "lpf-d10", "low-pass", 10),
]


def test_filter_auc_data_selects_exactly_the_figure_rows(table: pd.DataFrame) -> None:
    data = filter_auc_data(table)
    got = [
        (r.train_dataset, r.arch, r.seed, r.perturbation, r.filter,
         None if pd.isna(r.diameter) else r.diameter)
        for r in data.itertuples()
    ]
    assert got == EXPECTED
    assert list(data.index) == list(range(len(EXPECTED)))
    assert (data["test_dataset"] == data["train_dataset"]).all()
    assert (data["class"] == "macro").all()
    assert list(data["level"]) == ["slice"] * 5 + ["image"] * 6
    assert pd.api.types.is_integer_dtype(data["diameter"])
    assert [int(d) for d in data["diameter"].dropna()] == [3, 10, 20, 100, 3, 10, 20, 100, 10]
    expected_auc = [SELECTED_AUC[key[:4]] for key in EXPECTED]
    np.testing.assert_allclose(data["auc"].to_numpy(dtype=float), expected_auc)
    # The input columns travel along unchanged.
    np.testing.assert_allclose(data["ci_high"] - data["auc"], 0.03)
    assert set(table.columns) | {"filter", "diameter"} == set(data.columns)


def test_filter_auc_data_rejects_duplicate_points(table: pd.DataFrame) -> None:
    row = filter_auc_data(table).iloc[[1]].drop(columns=["filter", "diameter"])
    with pytest.raises(ValueError, match="several internal macro rows.*lpf-d3"):
        filter_auc_data(pd.concat([table, row], ignore_index=True))


def test_plot_filter_auc_writes_png_and_returns_the_data(table: pd.DataFrame, tmp_path) -> None:
    out = tmp_path / "figures" / "filter_auc.png"
    data = plot_filter_auc(table, out)
    pd.testing.assert_frame_equal(data, filter_auc_data(table))
    assert out.stat().st_size > 10_000
    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width > 800 and height > 300  # two panels side by side at 120 dpi
    assert plt.get_fignums() == []  # nothing left open in pyplot


def test_filter_auc_figure_draws_each_curve_its_baseline_and_chance(table: pd.DataFrame) -> None:
    figure = _filter_auc_figure(filter_auc_data(table))
    low, high = figure.axes
    for ax in (low, high):
        assert ax.get_xscale() == "log"
        assert ax.get_ylim() == (0.4, 1.02)
        assert ax.get_xlabel() == DIAMETER_LABEL
    # Data lines in legend order: ct-b seed 0, cxr-a seed 0, cxr-a seed 1 (low-pass only).
    low_lines = [line for line in low.get_lines() if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in low_lines] == [[3, 10], [3, 10], [10]]
    np.testing.assert_allclose(low_lines[0].get_ydata(), [0.55, 0.66])
    np.testing.assert_allclose(low_lines[1].get_ydata(), [0.61, 0.72])
    high_lines = [line for line in high.get_lines() if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in high_lines] == [[20, 100], [20, 100]]
    np.testing.assert_allclose(high_lines[1].get_ydata(), [0.83, 0.79])
    # Baselines: dashed, at the unfiltered AUC, in the colour of their curve.
    dashed = [line for line in high.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == [0.81, 0.88]
    assert [line.get_color() for line in dashed] == [line.get_color() for line in high_lines]
    dotted = [line for line in low.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and list(dotted[0].get_ydata()) == [0.5, 0.5]
    # Error bars span the CI: auc - 0.02 .. auc + 0.03.
    bars = low.collections[0].get_segments()
    np.testing.assert_allclose([segment[:, 1] for segment in bars], [[0.53, 0.58], [0.64, 0.69]])


def test_plot_filter_auc_without_filter_rows_raises(table: pd.DataFrame, tmp_path) -> None:
    unfiltered = table[~table["perturbation"].str.match(r"[lh]pf-")]
    with pytest.raises(ValueError, match="no low-/high-pass rows"):
        plot_filter_auc(unfiltered, tmp_path / "f.png")
    # Filter rows that exist only as external validation or study level do not count either.
    external = table[
        (table["train_dataset"] != table["test_dataset"]) | (table["level"] == "study")
    ]
    with pytest.raises(ValueError, match="no low-/high-pass rows"):
        plot_filter_auc(external, tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


def _cosine_image(size: int = 32) -> np.ndarray:
    """0.5 + 0.25 cos(2 pi 2 x / W) + 0.25 cos(2 pi 12 x / W): bins 2 and 12 along x."""
    x = np.arange(size)
    row = (
        0.5
        + 0.25 * np.cos(2 * math.pi * 2 * x / size)
        + 0.25 * np.cos(2 * math.pi * 12 * x / size)
    )
    return np.tile(row, (size, 1))


def test_filtered_panels_known_answer() -> None:
    image = _cosine_image()
    images = np.stack([image, image[::-1].T])  # a second sample: the same pattern along y
    panels = filtered_panels(images, ["lpf-d8", "hpf-d8"])
    assert panels.shape == (2, 3, 32, 32) and panels.dtype == np.float32
    np.testing.assert_array_equal(panels[:, 0], images.astype(np.float32))
    # D = 8 is a radius of 4 cycles per image: the bin-2 cosine passes the low-pass, the
    # bin-12 one the high-pass; each ends rescaled to [0, 1], i.e. (cos + 1) / 2.
    x = np.arange(32)
    low = np.tile((np.cos(2 * math.pi * 2 * x / 32) + 1) / 2, (32, 1))
    high = np.tile((np.cos(2 * math.pi * 12 * x / 32) + 1) / 2, (32, 1))
    np.testing.assert_allclose(panels[0, 1], low, atol=1e-5)
    np.testing.assert_allclose(panels[0, 2], high, atol=1e-5)
    np.testing.assert_allclose(panels[1, 1], low[::-1].T, atol=1e-5)


def test_filtered_panels_equal_parse_perturbation_and_are_what_is_plotted() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((3, 24, 40))
    ids = ["lpf-d6", "hpf-d30", "noise-0.1"]
    panels = filtered_panels(images, ids, seed=7)
    batch = torch.from_numpy(images.astype(np.float32))[:, None]
    for column, pid in enumerate(ids, start=1):
        expected = parse_perturbation(pid)(batch, generator=torch.Generator().manual_seed(7))
        np.testing.assert_array_equal(panels[:, column], expected[:, 0].numpy())
    np.testing.assert_array_equal(filtered_panels(images, ids, seed=7), panels)
    assert not np.array_equal(filtered_panels(images, ids, seed=8)[:, 3], panels[:, 3])

    figure = _samples_figure(panels, ["unfiltered", *ids], ["a", "b", "c"])
    axes = np.array(figure.axes).reshape(3, 4)
    for row, column in itertools.product(range(3), range(4)):
        shown = axes[row, column].get_images()[0]
        np.testing.assert_array_equal(shown.get_array(), panels[row, column])
        assert shown.get_clim() == (0.0, 1.0)
        assert shown.get_cmap().name == "gray"
    assert [ax.get_title() for ax in axes[0]] == ["unfiltered", "lpf-d6", "hpf-d30", "noise-0.1"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["a", "b", "c"]
    assert axes[1, 2].get_xticks().size == 0 and axes[1, 2].get_yticks().size == 0


def test_plot_filter_samples_png_grows_with_columns(tmp_path) -> None:
    images = np.stack([_cosine_image(), np.full((32, 32), 0.3)])
    narrow, wide = tmp_path / "narrow.png", tmp_path / "wide.png"
    plot_filter_samples(images, ["lpf-d8"], narrow, titles=["cosines", "flat"])
    plot_filter_samples(images, ["lpf-d8", "hpf-d8", "lpf-d4", "blur-1"], wide)
    with Image.open(narrow) as a, Image.open(wide) as b:
        assert a.format == b.format == "PNG"
        (w_narrow, h_narrow), (w_wide, h_wide) = a.size, b.size
    # 2 vs 5 columns of 2.2-inch panels at 120 dpi: about 264 pixels more per column.
    assert 2.0 < w_wide / w_narrow < 3.0
    assert abs(h_wide - h_narrow) < 0.1 * h_narrow
    assert plt.get_fignums() == []


def test_plot_filter_samples_rejects_bad_input(tmp_path) -> None:
    images = np.full((2, 16, 16), 0.5)
    with pytest.raises(ValueError, match="titles has 1 entries for 2 images"):
        plot_filter_samples(images, ["lpf-d4"], tmp_path / "f.png", titles=["only one"])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        filtered_panels(images * 3, ["lpf-d4"])
    with pytest.raises(ValueError, match=r"shape \(k, H, W\)"):
        filtered_panels(images[0], ["lpf-d4"])
    with pytest.raises(ValueError, match="invalid perturbation id 'lpf-d04'"):
        filtered_panels(images, ["lpf-d04"])
