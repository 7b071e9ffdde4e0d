"""Lung segmentation through Snakemake, on a tiny synthetic cohort with known lungs.

One module-scoped run feeds every test: the ground truth carried onto the cache grid, the
mask arrays' interface, the known answers (U-Net and Hounsfield-unit Dice >= 0.9 against the
synthetic ground truth) with a control (an untrained U-Net on another cohort) scoring
low, the implausible masks, no identifier in results/ or logs/, and a changed
U-Net setting rerunning only what it touches.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml

from conftest import run_snakemake
from readrace.segmentation.masks import MISSING, has_mask, to_grid
from test_workflow import planned_jobs

pytestmark = pytest.mark.workflow

CT_WINDOW = {"center": -600, "width": 1500}
TINY = {
    "pseudonym_salt": "salt-for-the-segmentation-test",
    "evaluation": {"bootstrap": 200},
    "experiments": [
        # Measured: 40 patients (about 24 training radiographs) reach a test Dice of about
        # 0.95 in 12 epochs of the default U-Net.
        {"kind": "segmentation", "train": ["cxr-a"], "apply": ["cxr-a"], "ct": ["ct"], "unet": {"epochs": 12}},
        # The control: a U-Net that has not learnt (one epoch at a vanishing learning rate),
        # so that the check above can fail. (The CT pipeline's control, a threshold below any
        # tissue, is a unit test: a dataset more costs ~30 CPU-s here.)
        {"kind": "segmentation", "train": ["cxr-ctrl"], "apply": ["cxr-ctrl"],
         "unet": {"epochs": 1, "lr": 1.0e-7, "largest_components": 0}},
    ],
    "datasets": {
        "cxr-a": {"adapter": "synthetic", "modality": "cxr", "split": {"train": 0.6, "validation": 0.1, "test": 0.3},
                  "preprocess": {"size": 64}, "options": {"site": "A", "patients": 40, "seed": 5}},
        "cxr-ctrl": {"adapter": "synthetic", "modality": "cxr", "split": {"train": 0.4, "validation": 0.2, "test": 0.4},
                     "preprocess": {"size": 64}, "options": {"site": "B", "patients": 6, "seed": 8}},
        "ct": {"adapter": "synthetic", "modality": "ct", "preprocess": {"size": 32, "window": CT_WINDOW},
               "options": {"patients": 4, "seed": 7}},
    },
}
# The overlay figure is a unit test (tests/test_segmentation.py): one job less here.
TARGETS = ("results/tables/segmentation.csv",)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("segmentation")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = run_snakemake(workdir, "--cores", "2", *TARGETS)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def table(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "results/tables/segmentation.csv").set_index(["dataset", "metric"])


def test_truth_masks_are_the_cohort_masks_on_the_cache_grid_row_for_row(run):
    for name, dataset in TINY["datasets"].items():
        images = np.load(run / f"results/{name}/cache/images.npy")
        truth = np.load(run / f"results/{name}/cache/truth_masks.npy")
        assert truth.shape == images.shape and truth.dtype == np.uint8
        assert has_mask(truth).all() and set(np.unique(truth)) <= {0, 1}
        sources = pd.read_csv(run / f"private/{name}/sources.csv", dtype=str)
        uids = pd.read_csv(run / f"data/synthetic/{name}/truth.csv", dtype=str).set_index("path")["SOPInstanceUID"]
        for row in (0, len(sources) // 2, len(sources) - 1):
            native = np.load(run / f"data/synthetic/{name}/masks/{uids[sources['path'][row]]}.npy")
            assert np.array_equal(truth[row], to_grid(native, dataset["preprocess"]["size"]))
    # The geometry is the image's: radiograph lungs are dark, so the truth masks pick dark pixels.
    images = np.load(run / "results/cxr-a/cache/images.npy").astype(np.float32)
    truth = np.load(run / "results/cxr-a/cache/truth_masks.npy").astype(bool)
    assert images[truth].mean() < images[~truth].mean() - 0.1


def test_masks_follow_the_interface_of_every_segmented_dataset(run):
    for name in TINY["datasets"]:
        images = np.load(run / f"results/{name}/cache/images.npy", mmap_mode="r")
        masks = np.load(run / f"results/{name}/cache/masks.npy")
        assert masks.shape == images.shape and masks.dtype == np.uint8
        assert set(np.unique(masks)) <= {0, 1} and MISSING not in masks


def test_dice_is_high_against_the_synthetic_truth_and_low_for_the_controls(run):
    scores = table(run)
    for name, method in (("cxr-a", "unet"), ("ct", "hu")):
        dice = scores.loc[(name, "dice")]
        assert dice["method"] == method
        assert dice["value"] >= 0.9, (name, dice["value"])
        assert dice["ci_low"] <= dice["value"] <= dice["ci_high"]
        assert scores.loc[(name, "hd95"), "value"] < 3.0  # pixels of the cache grid
    assert scores.loc[("cxr-a", "dice"), "rows"] == "test split"  # never scored on its training images
    manifest = pd.read_parquet(run / "results/cxr-a/manifest.parquet")
    assert scores.loc[("cxr-a", "dice"), "images"] == (manifest["split"] == "test").sum()
    assert scores.loc[("cxr-ctrl", "dice"), "value"] < 0.8


def test_implausible_masks_are_listed_by_pseudonymous_id(run):
    implausible = pd.read_csv(run / "results/tables/segmentation_implausible.csv", dtype={"id": str})
    quality = pd.read_csv(run / "results/segmentation/quality.csv", dtype={"image_id": str})
    assert set(quality["dataset"]) == set(TINY["datasets"])
    # The trained U-Net and the CT pipeline leave no empty or one-lung radiograph, no empty series.
    assert not (implausible["dataset"].isin(["cxr-a", "ct"]) & implausible["reason"].isin(["empty", "one lung"])).any()
    # Whatever is listed is named by pseudonymous ids of the manifests (images; CT: series).
    for name, unit, column in (("cxr-a", "image", "image_id"), ("cxr-ctrl", "image", "image_id"),
                               ("ct", "series", "series_id")):
        listed = implausible[implausible["dataset"] == name]
        assert set(listed["unit"]) <= {unit}
        assert set(listed["id"]) <= set(pd.read_parquet(run / f"results/{name}/manifest.parquet")[column])


def test_no_identifier_in_results_or_logs(run):
    phi = set()
    for name in TINY["datasets"]:
        truth = pd.read_csv(run / f"data/synthetic/{name}/truth.csv", dtype=str)
        phi |= set(truth["path"]) | set(truth["SOPInstanceUID"].dropna()) | set(truth["PatientID"].dropna())
        ds = pydicom.dcmread(run / f"data/synthetic/{name}" / truth["path"][0], stop_before_pixels=True)
        phi |= {str(ds.PatientName), ds.StudyInstanceUID}
    phi = {value for value in phi if value and len(value) >= 4}
    pattern = re.compile(b"|".join(re.escape(v.encode()) for v in sorted(phi, key=len, reverse=True)))
    written = [p for p in (run / "results").rglob("*") if p.is_file()] + list((run / "logs").rglob("*.log"))
    assert any(p.name == "truth_masks.npy" for p in written)
    for path in written:
        found = pattern.search(path.read_bytes())
        assert found is None, f"{found.group().decode()!r} found in {path}"
    assert pattern.search((run / "private/cxr-a/sources.csv").read_bytes())  # the search is not blind


def test_a_changed_unet_setting_retrains_the_unet_and_nothing_upstream(run):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"][0]["unet"]["epochs"] = 11
    expected = {
        ("workflow_config", "results/config.yaml"),
        ("train_segmentation", "results/models/segmentation/cxr-a/unet/seed0/model.pt"),
        ("lung_masks", "results/cxr-a/cache/masks.npy"),
        ("segmentation_table", "results/tables/segmentation.csv"),
        ("segmentation_figure", "results/figures/segmentation_masks.png"),
    }
    assert planned_jobs(run, config) - {("all", "")} == expected
