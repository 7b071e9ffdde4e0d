"""Known answers of the confounders family, through Snakemake, on two tiny synthetic cohorts.

``cxr``: the default cohort's weak confounders and its planted image signal. The tabular
models of race from BMI or from age + sex + findings + BMI stay near chance, the image model
stays high within every BMI stratum.

``cxr-bmi``: no planted signal (strength 0) and race carried by BMI alone (``bmi_by_race``);
the anatomy draws BMI as body habitus, so the image model reads race through it. The BMI
model is high, and within narrow BMI bands (the test's ``confounders.strata.bands``) the
image model's AUC falls towards chance. Its equal-distribution retrain writes the achieved
distributions.

``cxr`` also has two manufacturers (``second_manufacturer``: a share of its patients written
by another vendor's detector, another stored-value map, photometric interpretation and
positioning). A model retrained on one manufacturer's images keeps a high AUC on the other
manufacturer's test images: the planted race signal is in the body, not in the scanner.

One module-scoped run serves every test; a dry run checks that a changed setting reruns
exactly the jobs that read it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake

pytestmark = pytest.mark.workflow

SPLIT = {"train": 0.5, "validation": 0.2, "test": 0.3}
MAJORITY, MINORITY = "Northwind Medical", "Fabrikam Diagnostics"  # readrace.synthetic.sites
# Narrow bands: within 2 kg/m2 the planted BMI-race dependence leaves little to read.
BMI_BANDS = [20.0, 22.0, 24.0, 26.0, 28.0, 30.0, 32.0, 34.0]
CONFIG = {
    "pseudonym_salt": "salt-for-the-confounders-test",
    # Six epochs: every model of this run peaked by epoch 6 when it had eight (measured).
    "training": {"epochs": 6, "batch_size": 16, "patience": 6, "augment": False},
    "evaluation": {"bootstrap": 100},
    "confounders": {
        "cv_folds": 3,
        "estimators": {"logistic": {"grid": {"C": [0.1, 1.0, 10.0]}}},
        "strata": {"variables": ["bmi", "sex"], "bands": {"bmi": BMI_BANDS}, "intersections": True, "min_patients": 3},
    },
    "experiments": [
        {"kind": "race_detection", "train": ["cxr", "cxr-bmi"], "archs": ["resnet18"], "perturbations": ["none"],
         "seeds": [0]},
        {"kind": "confounders", "datasets": ["cxr"], "features": ["bmi", "combined"], "estimators": ["logistic"],
         "stratify": True, "manufacturers": {"cxr": [MAJORITY]}},
        {"kind": "confounders", "datasets": ["cxr-bmi"], "features": ["bmi"], "estimators": ["logistic"],
         "stratify": True, "retrain": ["equal"]},
    ],
    "datasets": {
        # Measured (tests/test_workflow.py): 100 patients at 64 px learn the default signal
        # to a test AUC of about 0.9 in 8 epochs. Three times the default strength, so that
        # the retrain on the 70 % of patients of one manufacturer learns it too in 6 epochs
        # (measured: at strength 1 with 60 % it stayed at chance; at strength 2 in 8 epochs
        # it reached 0.70 / 0.81 on the two manufacturers).
        "cxr": {"adapter": "synthetic", "modality": "cxr", "split": SPLIT, "preprocess": {"size": 64},
                "options": {"site": "A", "patients": 100, "seed": 5, "second_manufacturer": 0.3,
                            "signal": {"strength": 3.0}}},
        # Its own group, so that neither dataset's models are tested on the other.
        "cxr-bmi": {"adapter": "synthetic", "modality": "cxr", "group": "bmi", "split": SPLIT,
                    "preprocess": {"size": 32},
                    "options": {"site": "A", "patients": 120, "seed": 25, "signal": {"strength": 0.0},
                                "bmi_by_race": {"Asian": 22.0, "Black": 32.0, "White": 27.0, "sd": 3.0}}},
    },
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("confounders")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    result = run_snakemake(workdir, "--cores", "2", "results/tables/confounders.csv")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def table(run) -> pd.DataFrame:
    return pd.read_csv(run / "results/tables/confounders.csv")


def macro(table: pd.DataFrame, **where) -> pd.DataFrame:
    rows = table[(table["class"] == "macro") & (table["level"] == "image")]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return rows


def test_tabular_models_of_the_default_cohort_stay_near_chance(table):
    rows = macro(table, experiment="tabular", train_dataset="cxr")
    assert set(rows["features"]) == {"bmi", "combined"}
    # The synthetic confounders were measured at 0.60-0.64 on large cohorts; on 30 test
    # patients the estimate is wide, but far from the image model's.
    assert (rows["auc"] < 0.75).all(), rows
    image = macro(table, experiment="image", train_dataset="cxr")["auc"].item()
    assert image > 0.8
    assert (rows["auc"] < image - 0.15).all()


def test_the_image_model_stays_high_within_every_stratum_of_the_default_cohort(table):
    strata = macro(table, experiment="stratified", train_dataset="cxr", stratifier="bmi").dropna(subset=["auc"])
    assert len(strata) >= 3
    assert np.median(strata["auc"]) > 0.8, strata[["stratum", "auc", "patients_by_class"]]


def test_race_carried_by_bmi_alone_is_found_by_the_bmi_model_and_vanishes_within_bmi_strata(table):
    bmi_model = macro(table, experiment="tabular", train_dataset="cxr-bmi", features="bmi")["auc"].item()
    assert bmi_model > 0.8
    overall = macro(table, experiment="image", train_dataset="cxr-bmi")["auc"].item()
    assert overall > 0.7  # the image shows BMI through body habitus
    strata = macro(table, experiment="stratified", train_dataset="cxr-bmi", stratifier="bmi").dropna(subset=["auc"])
    assert len(strata) >= 3
    assert np.median(strata["auc"]) < overall - 0.1, strata[["stratum", "auc", "patients_by_class"]]


def test_small_strata_are_marked_not_hidden(run, table):
    strata = macro(table, experiment="stratified")
    small = strata[strata["too_small"]]
    assert len(small) and small["ci_low"].isna().all()
    assert strata.loc[~strata["too_small"], "ci_low"].notna().all()
    markdown = (run / "results/tables/confounders.md").read_text()
    assert "too few patients for an interval" in markdown and "Patients by race" in markdown
    assert (run / "results/figures/confounders_strata.png").stat().st_size > 0


def test_tabular_predictions_use_the_images_test_split(run):
    manifest = pd.read_parquet(run / "results/cxr/manifest.parquet")
    predictions = pd.read_parquet(run / "results/predictions/confounders/tabular/cxr/bmi/logistic/seed0/cxr.parquet")
    test = manifest[(manifest["split"] == "test") & manifest["race"].isin(["Asian", "Black", "White"])]
    assert sorted(predictions["image_id"]) == sorted(test["image_id"])


def test_equal_distribution_retrain_writes_its_achieved_distributions(run, table):
    sampler = pd.read_csv(run / "results/models/confounders/retrain/cxr-bmi/resnet18/equal/seed0/sampler.csv")
    race = sampler[sampler["distribution"] == "race"]
    assert len(race) == 3 and np.allclose(race["target"], 1 / 3)
    # The quotas reach the targets up to rounding; before resampling they were off.
    assert (race["achieved"] - race["target"]).abs().max() < 0.02
    assert (race["before"] - race["target"]).abs().max() > 0.05
    disease = sampler[sampler["distribution"] == "disease | race"]
    assert (disease["achieved"] - disease["target"]).abs().max() < 0.05
    assert len(macro(table, experiment="retrain-equal")) == 1


def test_a_model_of_one_manufacturer_reads_race_on_the_other_manufacturers_images(run, table):
    manifest = pd.read_parquet(run / "results/cxr/manifest.parquet")
    assert set(manifest["manufacturer"]) == {MAJORITY, MINORITY}
    rows = macro(table, experiment="manufacturer", train_dataset="cxr", test_dataset="cxr")
    assert set(rows["train_manufacturer"]) == {MAJORITY}
    auc = dict(zip(rows["test_manufacturer"], rows["auc"]))
    assert set(auc) == {"all", MAJORITY, MINORITY}
    assert auc[MAJORITY] > 0.75 and auc[MINORITY] > 0.75, rows[["test_manufacturer", "auc", "patients_by_class"]]
    # Trained on the majority's train and validation images only; tested on every test image.
    model_id = "confounders/retrain/cxr/resnet18/manufacturer-northwind-medical/seed0"
    predictions = pd.read_parquet(run / f"results/predictions/{model_id}/cxr.parquet")
    test = manifest[manifest["split"] == "test"]
    assert sorted(predictions["image_id"]) == sorted(test["image_id"])
    train_log = pd.read_csv(run / f"results/models/{model_id}/train_log.csv")
    assert len(train_log)
    markdown = (run / "results/tables/confounders.md").read_text()
    assert f"| cxr | {MAJORITY} | {MINORITY} |" in markdown


def test_the_coverage_of_the_patient_variables_is_a_table_and_in_the_markdown(run):
    coverage = pd.read_csv(run / "results/tables/confounder_variables.csv")
    assert set(coverage["dataset"]) == {"cxr", "cxr-bmi"}
    for dataset in ("cxr", "cxr-bmi"):
        studies = pd.read_parquet(run / f"results/{dataset}/manifest.parquet")["study_id"].nunique()
        rows = coverage[coverage["dataset"] == dataset].set_index(["variable", "source"])
        # The synthetic cohort records every BMI in its own table, and no breast density.
        assert rows.loc[("bmi", "dataset"), "studies"] == studies
        assert rows.loc[("breast_density", "missing"), "studies"] == studies
    assert "## Patient variables: studies with each, by source" in (run / "results/tables/confounders.md").read_text()


def test_nothing_under_results_names_a_source_file_or_uid(run):
    text = "".join(path.read_text(errors="ignore") for path in (run / "results").rglob("*")
                   if path.is_file() and path.suffix in (".csv", ".md") and "confounders" in str(path))
    assert "MRN" not in text and "dicom/" not in text
    assert not re.search(r"\b1\.2\.826\.|\b2\.25\.\d{10,}", text)


def changed_jobs(run: Path, config: dict) -> dict[str, int]:
    path = run / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(run, "-n", "results/tables/confounders.csv", configfile=path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    if "Job stats:" not in output:
        return {}
    counts = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_a_changed_setting_reruns_only_the_jobs_that_read_it(run):
    assert changed_jobs(run, CONFIG) == {}
    # Two settings in one dry run (each Snakemake start costs seconds): the grid reruns the
    # three logistic models, the sampler the equal-distribution retrain alone (not the
    # retrain on one manufacturer, which no sampler draws), each with its predict and score.
    changed = copy.deepcopy(CONFIG)
    changed["confounders"]["estimators"]["logistic"]["grid"]["C"] = [1.0]
    changed["confounders"]["sampler"] = {"age_bands": [50, 65]}
    assert changed_jobs(run, changed) == {"tabular_model": 3, "retrain_model": 1, "predict": 1, "score": 4,
                                          "confounders_table": 1}
