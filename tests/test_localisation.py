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
    assert target_layer(model, arch, 224)[0] in ("layer4[-1]", "features[-1]")  # the package's choice
    if arch == "small_cnn":  # three stride-2 stages: its last map is 8x8 at 64 px
        assert target_layer(model, arch, 64)[0] == "features[-1]"
    else:
        assert target_layer(model, arch, 64)[0] not in ("layer4[-1]", "features[-1]")  # 2x2 there
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


# ---------------------------------------------------------------------------------------------
# Known answers through Snakemake

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from conftest import run_snakemake  # noqa: E402

SPLIT = {"train": 0.5, "validation": 0.2, "test": 0.3}
#: Two planted cohorts: the signal in grid cell (0, 0) only (strength 2: a ninth of the image
#: carries it), and in the lungs only. Measured at 100 patients, 64 px, 8 epochs: the cell's
#: patch model 0.94, another cell's 0.44, the full model 0.79, occluding the cell at test
#: time 0.47; the lung-only model 0.72, the non-lung one 0.58 (interval over 0.5).
LOCALISATION = {
    "pseudonym_salt": "salt-for-the-localisation-test",
    "training": {"epochs": 8, "batch_size": 16, "patience": 8, "augment": False},
    "evaluation": {"bootstrap": 200},
    "execution": {"threads": 1},
    "experiments": [
        {"kind": "localisation", "train": ["grid"], "test_time": ["occlude-0-0", "occlude-2-2"],
         "retrain": ["patch-0-0", "patch-2-2"], "saliency": True},
        {"kind": "localisation", "train": ["lungsig"], "retrain": ["lung", "nonlung"]},
    ],
    "datasets": {
        "grid": {"adapter": "synthetic", "modality": "cxr", "shards": 1, "split": SPLIT, "preprocess": {"size": 64},
                 "options": {"site": "A", "patients": 100, "seed": 21, "signal": {"strength": 2.0, "region": "grid-0-0"}}},
        "lungsig": {"adapter": "synthetic", "modality": "cxr", "shards": 1, "split": SPLIT, "preprocess": {"size": 64},
                    "options": {"site": "A", "patients": 100, "seed": 22, "signal": {"strength": 1.0, "region": "lung"}}},
    },
}


@pytest.fixture(scope="module")
def localisation_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("localisation")
    (workdir / "config.yaml").write_text(yaml.safe_dump(LOCALISATION))
    result = run_snakemake(workdir, "--cores", "2", timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def _macro(run: Path, dataset: str, protocol: str, perturbation: str) -> pd.Series:
    table = pd.read_csv(run / "results/tables/localisation.csv")
    rows = table[(table["train_dataset"] == dataset) & (table["protocol"] == protocol)
                 & (table["perturbation"] == perturbation) & (table["class"] == "macro")]
    assert len(rows) == 1, (dataset, protocol, perturbation)
    row = rows.iloc[0]
    print(f"{dataset} {protocol} {perturbation}: {row['auc']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
    return row


@pytest.mark.workflow
def test_signal_in_one_cell_is_found_in_that_cell_only_and_occluding_it_removes_it(localisation_run):
    assert _macro(localisation_run, "grid", "retrain", "patch-0-0")["ci_low"] > 0.75
    other = _macro(localisation_run, "grid", "retrain", "patch-2-2")
    assert other["ci_low"] <= 0.5 <= other["ci_high"]
    assert _macro(localisation_run, "grid", "test-time", "none")["ci_low"] > 0.6
    occluded = _macro(localisation_run, "grid", "test-time", "occlude-0-0")
    assert occluded["ci_low"] <= 0.5 <= occluded["ci_high"]
    assert _macro(localisation_run, "grid", "test-time", "occlude-2-2")["ci_low"] > 0.6


@pytest.mark.workflow
def test_saliency_concentrates_in_the_planted_cell(localisation_run):
    shares = pd.read_csv(localisation_run / "results/tables/saliency.csv")
    every = shares[(shares["class"] == "all") & shares["region"].str.startswith("cell-")].set_index("region")
    print(every[["share", "area"]])
    assert every["share"].idxmax() == "cell-0-0"
    assert every.loc["cell-0-0", "share"] > 1.5 * every.loc["cell-0-0", "area"]
    assert (localisation_run / "results/figures/saliency.png").stat().st_size > 0


@pytest.mark.workflow
def test_signal_in_the_lungs_is_found_by_the_lung_model_and_not_by_the_nonlung_model(localisation_run):
    assert _macro(localisation_run, "lungsig", "retrain", "lung")["ci_low"] > 0.55
    nonlung = _macro(localisation_run, "lungsig", "retrain", "nonlung")
    assert nonlung["ci_low"] <= 0.5 <= nonlung["ci_high"]
    for figure in ("localisation_grid.png", "localisation_lung.png"):
        assert (localisation_run / "results/figures" / figure).stat().st_size > 0


def _planned(workdir: Path, config: dict) -> set[tuple[str, str]]:
    path = workdir / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "--cores", "2", "-n", configfile=path, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = set()
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", result.stdout + result.stderr, flags=re.M)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block)[1]
        output = re.search(r"^    output: ([^,\n]+)", block, flags=re.M)
        jobs.add((rule, output[1] if output else ""))
    return jobs


@pytest.mark.workflow
def test_changing_one_cell_reruns_exactly_its_jobs(localisation_run):
    config = yaml.safe_load(yaml.safe_dump(LOCALISATION))
    config["experiments"][0]["test_time"] = ["occlude-0-0", "occlude-1-2"]
    config["experiments"][0]["retrain"] = ["patch-0-0", "patch-2-1"]
    tested = "localisation/grid/resnet18/seed0/test-time/occlude-1-2"
    trained = "localisation/grid/resnet18/seed0/retrain/patch-2-1"
    expected = {
        ("workflow_config", "results/config.yaml"), ("all", ""),
        ("train_model", "results/models/race_detection/grid/resnet18/patch-2-1/seed0/model.pt"),
        ("localisation_table", "results/tables/localisation.csv"),
        ("localisation_figures", "results/figures/localisation_grid.png"),
    }
    for model in (tested, trained):
        expected |= {("predict", f"results/predictions/{model}/grid.parquet"), ("score", f"results/scores/{model}/grid.csv")}
    assert _planned(localisation_run, config) == expected
