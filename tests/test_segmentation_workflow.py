"""Lung segmentation through Snakemake, on a tiny synthetic cohort with known lungs.

One module-scoped run feeds every test. The U-Net trains on a mask set in Montgomery's own
layout (``CXR_png/``, ``ManualMask/leftMask``, ``rightMask``, ``ClinicalReadings/``), written
by the fixture from a synthetic cohort's images and truth masks: a dataset that records no
race, ingested as a mask set. The tests: the ground truth carried onto the cache grid, the
mask arrays' interface, the known answers (U-Net Dice >= 0.9 on the mask set's test split and
on a synthetic radiograph dataset it never saw; Hounsfield-unit Dice >= 0.9; their controls
are unit tests), the implausible masks, no identifier in results/ or logs/, a race block
naming the mask set refused, and a changed U-Net setting rerunning only what it touches.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml
from PIL import Image

from conftest import CONFIG_SCHEMA, run_snakemake
from readrace.config import ConfigError, validate_config
from readrace.experiments import evaluation_datasets
from readrace.ingest.dicom import read_dicom
from readrace.segmentation.masks import MISSING, has_mask, to_grid
from readrace.synthetic import CohortSpec, generate_cohort
from test_workflow import planned_jobs

pytestmark = pytest.mark.workflow

CT_WINDOW = {"center": -600, "width": 1500}
MONTGOMERY = "montgomery"
TINY = {
    "pseudonym_salt": "salt-for-the-segmentation-test",
    "evaluation": {"bootstrap": 200},
    "experiments": [
        # Trained on the 50-image mask set (about 30 training radiographs, 12 epochs),
        # applied to its own test split and to a synthetic dataset it never saw.
        {"kind": "segmentation", "train": [MONTGOMERY], "apply": [MONTGOMERY, "cxr-a"], "ct": ["ct"],
         "unet": {"epochs": 12}},
        # The controls, that the Dice checks can fail (an untrained U-Net scores about 0.5;
        # a threshold below any tissue finds no CT lungs), are unit tests: a dataset more
        # costs ~30 CPU-s here (tests/test_segmentation.py).
    ],
    "datasets": {
        # root: filled in by the fixture (the fake set is written before the run).
        MONTGOMERY: {"adapter": "montgomery", "mask_set": True, "modality": "cxr",
                     "split": {"train": 0.6, "validation": 0.1, "test": 0.3}, "preprocess": {"size": 64},
                     "options": {"root": "montgomery"}},
        "cxr-a": {"adapter": "synthetic", "modality": "cxr", "preprocess": {"size": 64},
                  "options": {"site": "A", "patients": 8, "seed": 6}},
        "ct": {"adapter": "synthetic", "modality": "ct", "preprocess": {"size": 32, "window": CT_WINDOW},
               "options": {"patients": 4, "seed": 7}},
    },
}
SYNTHETIC = [name for name, dataset in TINY["datasets"].items() if dataset["adapter"] == "synthetic"]
# The overlay figure is a unit test (tests/test_segmentation.py): one job less here.
TARGETS = ("results/tables/segmentation.csv",)
#: Files of the fake set that are not radiographs: ingestion quarantines them.
NOT_IMAGES = ("CXR_png/Thumbs.db",)


def write_montgomery(cohort: Path, root: Path, patients: int) -> pd.DataFrame:
    """A Montgomery-layout set from a synthetic cohort: the first radiograph of each of the
    first ``patients`` patients as an 8-bit PNG, its truth mask split into the two lungs'
    masks, a clinical reading with sex and age (none for the last image). Returns the images
    written (name, source path, patient)."""
    truth = pd.read_csv(cohort / "truth.csv", dtype=str)
    people = pd.read_csv(cohort / "patients.csv", dtype=str).set_index("PatientID")
    ages = pd.read_csv(cohort / "studies.csv", dtype=str).set_index("StudyInstanceUID")["age"]
    first = truth[truth["kind"] == "image"].drop_duplicates("PatientID").head(patients)
    for folder in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask", "ClinicalReadings"):
        (root / folder).mkdir(parents=True)
    rows = []
    for number, row in enumerate(first.itertuples(), start=1):
        name = f"MCUCXR_{number:04d}_{number % 2}.png"
        pixels = read_dicom(cohort / row.path).frames[0]  # display values in [0, 1]
        Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(root / "CXR_png" / name)
        mask = np.load(cohort / "masks" / f"{row.SOPInstanceUID}.npy").astype(bool)
        half = mask.shape[1] // 2  # the patient's right lung is on the image's left
        for side, keep in (("rightMask", slice(0, half)), ("leftMask", slice(half, None))):
            lung = np.zeros_like(mask)
            lung[:, keep] = mask[:, keep]
            Image.fromarray(lung.astype(np.uint8) * 255).save(root / "ManualMask" / side / name)
        if number < len(first):
            sex, age = people.loc[row.PatientID, "sex"], int(ages[row.StudyInstanceUID])
            (root / "ClinicalReadings" / name.replace(".png", ".txt")).write_text(
                f"Patient's Sex: {sex}\nPatient's Age: {age:03d}Y\nnormal\n")
        rows.append({"name": name, "path": row.path, "PatientID": row.PatientID})
    for extra in NOT_IMAGES:
        (root / extra).write_bytes(b"not an image")
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("segmentation")
    cohort = workdir / "montgomery-source"
    generate_cohort(CohortSpec.from_options("cxr", {"site": "A", "patients": 50, "seed": 5, "broken_files": False}),
                    cohort, progress=False)
    write_montgomery(cohort, workdir / "montgomery", 50).to_csv(workdir / "montgomery-source.csv", index=False)
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
        size = dataset["preprocess"]["size"]
        for row in (0, len(sources) // 2, len(sources) - 1):
            if name == MONTGOMERY:  # the union of the provider's two lung masks
                lungs = [np.asarray(Image.open(run / f"montgomery/ManualMask/{side}/{Path(sources['path'][row]).name}"))
                         for side in ("leftMask", "rightMask")]
                native = (np.maximum(*lungs) > 0).astype(np.uint8)
            else:
                uids = pd.read_csv(run / f"data/synthetic/{name}/truth.csv", dtype=str).set_index("path")["SOPInstanceUID"]
                native = np.load(run / f"data/synthetic/{name}/masks/{uids[sources['path'][row]]}.npy")
            assert np.array_equal(truth[row], to_grid(native, size))
    # The geometry is the image's: radiograph lungs are dark, so the truth masks pick dark pixels.
    images = np.load(run / "results/cxr-a/cache/images.npy").astype(np.float32)
    truth = np.load(run / "results/cxr-a/cache/truth_masks.npy").astype(bool)
    assert images[truth].mean() < images[~truth].mean() - 0.1


def test_the_mask_set_is_ingested_without_race_one_patient_per_image(run):
    manifest = pd.read_parquet(run / f"results/{MONTGOMERY}/manifest.parquet")
    written = pd.read_csv(run / "montgomery-source.csv")
    assert len(manifest) == len(written) == manifest["patient_id"].nunique()
    assert manifest["race"].isna().all()
    assert set(manifest["split"]) == {"train", "validation", "test"}
    # Sex and age from the clinical readings (the last image has none: both missing).
    sources = pd.read_csv(run / f"private/{MONTGOMERY}/sources.csv", dtype=str)
    by_name = manifest.assign(name=[Path(path).name for path in sources["path"]]).set_index("name")
    last = written["name"].iloc[-1]
    assert pd.isna(by_name.loc[last, "sex"]) and pd.isna(by_name.loc[last, "age"])
    assert by_name.drop(index=last)["sex"].isin(["F", "M"]).all() and by_name.drop(index=last)["age"].notna().all()
    quarantine = pd.read_csv(run / f"results/{MONTGOMERY}/quarantine.csv")
    assert len(quarantine) == len(NOT_IMAGES)  # the stray file, not the race-less images


def test_masks_follow_the_interface_of_every_segmented_dataset(run):
    for name in TINY["datasets"]:
        images = np.load(run / f"results/{name}/cache/images.npy", mmap_mode="r")
        masks = np.load(run / f"results/{name}/cache/masks.npy")
        assert masks.shape == images.shape and masks.dtype == np.uint8
        assert set(np.unique(masks)) <= {0, 1} and MISSING not in masks


def test_dice_is_high_against_the_synthetic_truth(run):
    scores = table(run)
    for name, method in ((MONTGOMERY, "unet"), ("cxr-a", "unet"), ("ct", "hu")):
        dice = scores.loc[(name, "dice")]
        assert dice["method"] == method
        assert dice["value"] >= 0.9, (name, dice["value"])
        assert dice["ci_low"] <= dice["value"] <= dice["ci_high"]
        assert scores.loc[(name, "hd95"), "value"] < 3.0  # pixels of the cache grid
    assert scores.loc[(MONTGOMERY, "dice"), "rows"] == "test split"  # never scored on its training images
    manifest = pd.read_parquet(run / f"results/{MONTGOMERY}/manifest.parquet")
    assert scores.loc[(MONTGOMERY, "dice"), "images"] == (manifest["split"] == "test").sum()
    assert scores.loc[("cxr-a", "dice"), "rows"] == "all"


def test_implausible_masks_are_listed_by_pseudonymous_id(run):
    implausible = pd.read_csv(run / "results/tables/segmentation_implausible.csv", dtype={"id": str})
    quality = pd.read_csv(run / "results/segmentation/quality.csv", dtype={"image_id": str})
    assert set(quality["dataset"]) == set(TINY["datasets"])
    # The trained U-Net and the CT pipeline leave no empty or one-lung radiograph, no empty series.
    assert not (implausible["dataset"].isin([MONTGOMERY, "cxr-a", "ct"])
                & implausible["reason"].isin(["empty", "one lung"])).any()
    # Whatever is listed is named by pseudonymous ids of the manifests (images; CT: series).
    for name, unit, column in ((MONTGOMERY, "image", "image_id"), ("cxr-a", "image", "image_id"),
                               ("ct", "series", "series_id")):
        listed = implausible[implausible["dataset"] == name]
        assert set(listed["unit"]) <= {unit}
        assert set(listed["id"]) <= set(pd.read_parquet(run / f"results/{name}/manifest.parquet")[column])


def test_no_identifier_in_results_or_logs(run):
    # The mask set's file names are its own ids (MCUCXR_0001_0): none may reach results/.
    phi = {Path(name).stem for name in pd.read_csv(run / "montgomery-source.csv")["name"]}
    for folder in [f"data/synthetic/{name}" for name in SYNTHETIC] + ["montgomery-source"]:
        truth = pd.read_csv(run / folder / "truth.csv", dtype=str)
        phi |= set(truth["path"]) | set(truth["SOPInstanceUID"].dropna()) | set(truth["PatientID"].dropna())
        ds = pydicom.dcmread(run / folder / truth["path"][0], stop_before_pixels=True)
        phi |= {str(ds.PatientName), ds.StudyInstanceUID}
    phi = {value for value in phi if value and len(value) >= 4}
    pattern = re.compile(b"|".join(re.escape(v.encode()) for v in sorted(phi, key=len, reverse=True)))
    written = [p for p in (run / "results").rglob("*") if p.is_file()] + list((run / "logs").rglob("*.log"))
    assert any(p.name == "truth_masks.npy" for p in written)
    for path in written:
        found = pattern.search(path.read_bytes())
        assert found is None, f"{found.group().decode()!r} found in {path}"
    for name in (MONTGOMERY, "cxr-a"):  # the search is not blind
        assert pattern.search((run / f"private/{name}/sources.csv").read_bytes())


def test_a_changed_unet_setting_retrains_the_unet_and_nothing_upstream(run):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"][0]["unet"]["epochs"] = 11
    expected = {
        ("workflow_config", "results/config.yaml"),
        ("train_segmentation", f"results/models/segmentation/{MONTGOMERY}/unet/seed0/model.pt"),
        ("lung_masks", f"results/{MONTGOMERY}/cache/masks.npy"),
        ("lung_masks", "results/cxr-a/cache/masks.npy"),
        ("segmentation_table", "results/tables/segmentation.csv"),
        ("segmentation_figure", "results/figures/segmentation_masks.png"),
    }
    assert planned_jobs(run, config) - {("all", "")} == expected


def test_only_segmentation_blocks_may_use_the_mask_set():
    """A race block naming the mask set is a config error that names the block's key and the
    dataset (the Snakefile validates the config so at every parse); race models' external
    validation leaves it out."""
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"].append({"kind": "race_detection", "train": [MONTGOMERY], "archs": ["resnet18"]})
    number = len(config["experiments"]) - 1
    with pytest.raises(ConfigError, match=re.escape(f"experiments.{number}.train: '{MONTGOMERY}' is a mask set "
                                                    f"(datasets.{MONTGOMERY}.mask_set: true)")):
        validate_config(config, CONFIG_SCHEMA)
    config["experiments"][number]["train"] = ["cxr-a"]
    validate_config(config, CONFIG_SCHEMA)
    assert evaluation_datasets(config, "cxr-a") == ["cxr-a"]
