"""Localisation: the grid's geometry, the region perturbations, Grad-CAM pieces, the kind's
coordinates and checks (unit tests), and the known answers through Snakemake."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from readrace.experiments import KINDS, model_of, perturbation_at_test, weights_of
from readrace.experiments.localisation import LocalisationModel, coordinates, expand_cells
from readrace.localisation.report import describe, localisation_table
from readrace.localisation.saliency import gradcam_maps, region_shares, salient_box, target_layer
from readrace.models import ARCHITECTURES, build_model
from readrace.transforms.perturbation_ids import grid_bounds, needs_masks
from readrace.transforms.perturbations import FILL, GridCell, parse_perturbation
from readrace.transforms.sample import perturbation_transform


# ---------------------------------------------------------------------------------------------
# The grid and the region perturbations


@pytest.mark.parametrize("n", [32, 64, 65, 66, 100, 224, 256])
def test_grid_cells_tile_the_axis_and_follow_the_synthetic_cohorts_rule(n):
    bounds = grid_bounds(n)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    centres = (np.arange(n) + 0.5) / n
    for j, (start, stop) in enumerate(bounds):
        # The synthetic cohort plants grid-R-C where the pixel centre lies in [j/3, (j+1)/3).
        assert np.array_equal(np.flatnonzero((centres >= j / 3) & (centres < (j + 1) / 3)), np.arange(start, stop))


def test_grid_geometry_on_grids_not_divisible_by_three():
    assert grid_bounds(64) == [(0, 21), (21, 43), (43, 64)]
    assert grid_bounds(224) == [(0, 75), (75, 149), (149, 224)]  # nothing dropped, unlike int(224/3)


def test_patch_keeps_one_cell_and_occlude_removes_it():
    x = torch.rand(2, 1, 64, 64) * 0.9 + 0.1
    patch, occlude = parse_perturbation("patch-2-1"), parse_perturbation("occlude-2-1")
    cell = torch.zeros(64, 64, dtype=torch.bool)
    cell[43:64, 21:43] = True
    assert torch.equal(patch(x)[..., cell], x[..., cell]) and (patch(x)[..., ~cell] == FILL).all()
    assert torch.equal(occlude(x)[..., ~cell], x[..., ~cell]) and (occlude(x)[..., cell] == FILL).all()
    assert isinstance(patch, GridCell) and patch.id == "patch-2-1"


def test_lung_and_nonlung_fill_the_other_region_by_cache_row():
    images = torch.rand(3, 1, 8, 8) * 0.9 + 0.1
    masks = np.zeros((5, 8, 8), dtype=np.uint8)
    masks[3, 2:6, 2:6] = 1
    masks[1, :, :4] = 1
    sample = {"image": images, "index": np.array([1, 3, 4])}
    lung = perturbation_transform("lung", masks)(sample, {})["image"]
    nonlung = perturbation_transform("nonlung", masks)(sample, {})["image"]
    for k, row in enumerate([1, 3, 4]):
        inside = torch.from_numpy(masks[row] == 1)
        assert torch.equal(lung[k, 0][inside], images[k, 0][inside]) and (lung[k, 0][~inside] == FILL).all()
        assert torch.equal(nonlung[k, 0][~inside], images[k, 0][~inside]) and (nonlung[k, 0][inside] == FILL).all()
    assert perturbation_transform("lung", masks).id == "lung"


def test_masked_perturbations_say_what_they_need():
    assert needs_masks("lung") == needs_masks("nonlung") == "lung"
    assert needs_masks("occlude-salient") == "saliency" and needs_masks("occlude-1-1") is None
    with pytest.raises(ValueError, match="reads a lung mask per image"):
        parse_perturbation("lung")
    with pytest.raises(ValueError, match="no 'mask' and no masks"):
        perturbation_transform("nonlung")({"image": torch.zeros(1, 1, 4, 4), "index": np.array([0])}, {})
    with pytest.raises(ValueError, match="masks must be on the cache's grid"):
        perturbation_transform("lung", np.zeros((2, 8, 8)))({"image": torch.zeros(1, 1, 4, 4), "index": np.array([0])}, {})


# ---------------------------------------------------------------------------------------------
# Saliency


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_gradcam_runs_on_every_architecture_readrace_trains(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3).eval()
    target_layer(model, arch)
    maps = gradcam_maps(model, arch, torch.rand(2, 1, 32, 32), np.array([0, 2]))
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6


def test_salient_box_is_the_bounding_box_of_the_region_around_the_maximum():
    cam = np.zeros((10, 10))
    cam[2:4, 3:7] = 0.8
    cam[3, 5] = 1.0
    cam[8, 8] = 0.9  # above the threshold, but not connected to the maximum
    box = salient_box(cam, 0.5)
    assert box[2:4, 3:7].all() and box.sum() == 8
    assert not salient_box(np.zeros((4, 4)), 0.5).any()


def test_region_shares_sum_to_one_over_the_grid_and_find_the_hot_cell():
    cams = np.full((4, 64, 64), 0.01, dtype=np.float32)
    cams[:, 0:21, 0:21] = 1.0
    lung = np.zeros((4, 64, 64), dtype=np.uint8)
    lung[:, 30:, :] = 1
    shares = region_shares(cams, np.array([0, 0, 1, 1]), ["A", "B"], lung)
    every = shares[shares["class"] == "all"].set_index("region")
    cells = every.loc[[f"cell-{r}-{c}" for r in range(3) for c in range(3)]]
    assert cells["share"].sum() == pytest.approx(1.0)
    assert cells["share"].idxmax() == "cell-0-0" and cells.loc["cell-0-0", "share"] > 0.9
    assert every.loc["lung", "share"] + every.loc["nonlung", "share"] == pytest.approx(1.0)
    assert every.loc["cell-0-0", "area"] == pytest.approx(21 * 21 / 64**2)
    assert set(shares["class"]) == {"all", "A", "B"}


# ---------------------------------------------------------------------------------------------
# The kind


def _config() -> dict:
    split = {"train": 0.6, "validation": 0.1, "test": 0.3}
    return {"datasets": {
        "cxr": {"adapter": "synthetic", "modality": "cxr", "split": split, "preprocess": {"size": 64}},
        "mammo": {"adapter": "synthetic", "modality": "mammo", "split": split, "preprocess": {"size": 64}},
    }}


def test_coordinates_spell_their_protocol_weights_and_test_perturbation():
    block = {"kind": "localisation", "train": ["cxr"], "test_time": ["lung", "occlude-*"], "retrain": ["patch-1-1"],
             "saliency": True}
    models = coordinates(block, _config())
    ids = {m.path for m in models}
    assert "localisation/cxr/resnet18/seed0/test-time/none" in ids  # the reference
    assert len([m for m in models if m.protocol == "test-time"]) == 1 + 1 + 9 + 1
    retrain = "localisation/cxr/resnet18/seed0/retrain/patch-1-1"
    assert weights_of(retrain) == "race_detection/cxr/resnet18/patch-1-1/seed0" and perturbation_at_test(retrain) is None
    tested = "localisation/cxr/resnet18/seed0/test-time/occlude-salient"
    assert weights_of(tested) == "race_detection/cxr/resnet18/none/seed0" and perturbation_at_test(tested) == "occlude-salient"
    for m in models:
        assert model_of(m.path) == m
    assert coordinates({"kind": "localisation", "train": ["cxr"], "retrain": ["lung"]}, _config()) == [
        LocalisationModel("cxr", "resnet18", 0, "retrain", "lung")]  # no test-time protocol: no full model needed
    with pytest.raises(ValueError, match="not a localisation model id"):
        LocalisationModel.from_path("localisation/cxr/resnet18/seed0/sometimes/lung")
    assert expand_cells(["patch-*"])[::4] == ["patch-0-0", "patch-1-1", "patch-2-2"]


def test_check_names_the_key_and_the_problem():
    check = KINDS["localisation"].check
    problems = check(2, {"kind": "localisation", "train": ["mammo", "nowhere"], "test_time": ["lung", "patch-3-0"],
                         "retrain": ["none"]}, _config())
    assert "experiments.2.train: 'nowhere' is not a dataset of this config" in problems
    assert any(p.startswith("experiments.2.test_time: 'lung' needs lung masks; 'mammo' is mammo") for p in problems)
    assert any(p.startswith("experiments.2.test_time: invalid perturbation id 'patch-3-0'") for p in problems)
    assert any(p.startswith("experiments.2.retrain: 'none' is added by the kind itself") for p in problems)


def test_table_describes_each_perturbation(tmp_path):
    rows = []
    for pid in ["none", "lung", "patch-0-2", "occlude-salient"]:
        path = tmp_path / f"{pid}.csv"
        pd.DataFrame({"kind": ["localisation"], "model": [f"m/{pid}"], "train_dataset": ["cxr"], "arch": ["resnet18"],
                      "perturbation": [pid], "seed": [0], "protocol": ["test-time"], "test_dataset": ["cxr"],
                      "level": ["image"], "class": ["macro"], "auc": [0.7], "ci_low": [0.6], "ci_high": [0.8],
                      "n_units": [10], "n_images": [10], "bootstrap_unit": ["patient"],
                      "n_bootstrap_units": [10]}).to_csv(path, index=False)
        rows.append(path)
    table = localisation_table(rows).set_index("perturbation")
    assert table.loc["patch-0-2", ["experiment", "region", "row", "col"]].tolist() == ["patch", "cell-0-2", 0, 2]
    assert table.loc["none", "region"] == "all" and table.loc["occlude-salient", "region"] == "salient"
    assert describe("nonlung")["experiment"] == "nonlung"
