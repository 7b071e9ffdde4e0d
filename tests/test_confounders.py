"""Unit tests of readrace.confounders: feature sets and the label policy, tabular pipelines on
patient-level splits, strata and their interval rule, the equal-distribution sampler, the
Table-2 table; and that boneclip clips the raw [0, 1] cache values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import PREDICTIONS_SCHEMA
from readrace.confounders.features import LabelPolicy, feature_set, feature_table, intensity_histograms
from readrace.confounders.sampler import EqualDistribution, achieved_distribution
from readrace.confounders.strata import band_labels, stratify, stratum_values
from readrace.confounders.tabular import build_pipeline, fit_tabular
from readrace.evaluation.metrics import one_vs_rest_auc
from readrace.evaluation.predictions import Predictions, validate
from readrace.experiments.confounders import RetrainModel, TabularModel, model
from readrace.labels import FINDINGS
from readrace.tasks import Level, race_task
from readrace.transforms.sample import perturb_and_augment

CLASSES = ("Asian", "Black", "White")


def _hex(prefix: str, k: int) -> str:
    return f"{prefix}{k:015x}"[-16:].rjust(16, "0")


def fake_manifest(n_patients: int = 300, seed: int = 0, bmi_effect: float = 0.0) -> pd.DataFrame:
    """A manifest-like table: two images per patient, race-dependent BMI when ``bmi_effect``."""
    rng = np.random.default_rng(seed)
    race = rng.choice(CLASSES, size=n_patients)
    shift = {"Asian": -1.0, "Black": 1.0, "White": 0.0}
    bmi = 27 + bmi_effect * np.array([shift[r] for r in race]) + rng.normal(0, 3, n_patients)
    split = rng.choice(["train", "validation", "test"], size=n_patients, p=[0.6, 0.1, 0.3])
    rows = []
    for p in range(n_patients):
        findings = {name: float(rng.random() < 0.2) for name in FINDINGS}
        for i in range(2):
            rows.append({"patient_id": _hex("a", p), "study_id": _hex("b", p), "image_id": _hex("c", 2 * p + i),
                         "race": race[p], "sex": rng.choice(["F", "M"]), "age": float(rng.integers(20, 90)),
                         "bmi": float(bmi[p]), "split": split[p], "cache_index": 2 * p + i, **findings})
    return pd.DataFrame(rows)


SETTINGS = {"logistic": {"grid": {"C": [0.1, 1.0]}}, "forest": {"n_estimators": 20, "grid": {"max_depth": [2]}},
            "xgboost": {"n_estimators": 20, "grid": {"max_depth": [1]}}}


def test_label_policy_states_what_uncertain_and_missing_become():
    values = pd.Series([1.0, 0.0, -1.0, np.nan])
    assert LabelPolicy().encode(values).tolist() == ["positive", "negative", "uncertain", "negative"]
    assert LabelPolicy("zero", "category").encode(values).tolist() == ["positive", "negative", "negative", "missing"]
    assert LabelPolicy("one").encode(values).tolist()[2] == "positive"
    with pytest.raises(ValueError, match="confounders.labels.uncertain"):
        LabelPolicy("drop")


def test_feature_sets_and_histograms():
    assert feature_set("combined").manifest_columns() == ["age", "bmi", "sex", *FINDINGS]
    assert feature_set("hist16").histogram_bins == 16
    with pytest.raises(ValueError, match="unknown confounder feature set"):
        feature_set("height")
    images = np.zeros((2, 4, 4), dtype=np.float16)
    images[1, :2] = 1.0
    hist = intensity_histograms(images, np.array([0, 1]), 4)
    assert hist[0].tolist() == [1, 0, 0, 0] and hist[1].tolist() == [0.5, 0, 0, 0.5]
    with pytest.raises(KeyError, match="breast_density"):
        feature_table(fake_manifest(5), feature_set("density"), LabelPolicy())


@pytest.mark.parametrize("estimator", ["logistic", "forest", "xgboost"])
def test_tabular_model_finds_a_planted_bmi_effect_and_not_an_absent_one(estimator):
    task = race_task("cxr")
    aucs = {}
    for effect in (0.0, 4.0):
        manifest = fake_manifest(600, bmi_effect=effect)
        result = fit_tabular(manifest, task=task, features=feature_set("bmi"), estimator=estimator,
                             settings=SETTINGS[estimator], policy=LabelPolicy(), seed=0, cv_folds=3,
                             keys={"kind": "confounders", "model": "m", "test_dataset": "d"},
                             units={"patient": "patient", "study": "study"})
        validate(result.predictions, PREDICTIONS_SCHEMA)
        table = result.predictions.table
        # One row per test image, never a training patient.
        assert set(table["image_id"]) == set(manifest.loc[manifest["split"] == "test", "image_id"])
        aucs[effect] = np.nanmean(one_vs_rest_auc(table["label"].to_numpy(), table[task.probability_columns].to_numpy(), 3))
    assert aucs[4.0] > 0.75
    assert abs(aucs[0.0] - 0.5) < 0.1


def test_pipeline_imputes_and_encodes_missing_values():
    manifest = fake_manifest(60)
    manifest.loc[::7, "bmi"] = np.nan
    manifest.loc[::5, "sex"] = None
    features = feature_set("combined")
    x = feature_table(manifest, features, LabelPolicy())
    pipeline = build_pipeline(features, "logistic", {"grid": {}}, 0)
    pipeline.fit(x, race_task("cxr").rows(manifest)["label"])
    assert np.isfinite(pipeline.predict_proba(x)).all()


def _predictions(manifest: pd.DataFrame, probs: np.ndarray) -> Predictions:
    task = race_task("cxr")
    rows = task.rows(manifest)
    table = pd.DataFrame({"kind": "race_detection", "model": "m", "test_dataset": "d", "image_id": rows["image_id"],
                          "patient_id": rows["patient_id"], "study_id": rows["study_id"], "label": rows["label"]})
    for k, column in enumerate(task.probability_columns):
        table[column] = probs[:, k]
    return Predictions(table.reset_index(drop=True), task, (Level("image"),), keys=("kind", "model", "test_dataset"))


def test_strata_bands_and_the_interval_rule():
    assert band_labels([18.5, 25, 30]) == ["<18.5", "18.5-25", "25-30", ">=30"]
    manifest = fake_manifest(200)
    manifest.loc[0, "bmi"] = np.nan
    values = stratum_values(manifest, "bmi", {"bmi": [18.5, 25, 30]})
    assert pd.isna(values.iloc[0]) and set(values.dropna()) <= {"<18.5", "18.5-25", "25-30", ">=30"}
    labels = race_task("cxr").rows(manifest)["label"].to_numpy()
    probs = np.full((len(manifest), 3), 0.1)
    probs[np.arange(len(manifest)), labels] = 0.8  # a perfect model
    table = stratify(_predictions(manifest, probs), manifest, variables=["bmi", "sex"],
                     bands={"bmi": [18.5, 25, 30]}, intersections=True, min_patients=5, n_boot=100, seed=0,
                     confidence=0.95)
    macro = table[table["class"] == "macro"]
    assert macro.iloc[0]["stratifier"] == "all" and macro.iloc[0]["auc"] == 1.0
    assert {"bmi", "sex", "bmi x sex"} <= set(macro["stratifier"])
    small = macro[macro["too_small"]]
    assert len(small) and small["ci_low"].isna().all()  # marked, not hidden
    big = macro[~macro["too_small"]]
    assert big["ci_low"].notna().all()
    assert (macro[["patients_Asian", "patients_Black", "patients_White"]].min(axis=1)[macro["too_small"]] < 5).all()


def test_sampler_reaches_its_targets():
    rng = np.random.default_rng(1)
    n = 20000
    race = rng.choice(CLASSES, size=n, p=[0.1, 0.3, 0.6])
    # Disease and age both depend on race before resampling.
    sick = rng.random(n) < np.select([race == "Asian", race == "Black"], [0.2, 0.7], 0.4)
    age = rng.normal(np.where(sick, 65, 45) + np.where(race == "White", 8, 0), 12)
    rows = pd.DataFrame({"race": race, "No Finding": np.where(sick, 0.0, 1.0), "age": age})
    sampler = EqualDistribution(seed=3)
    after = sampler.resample(rows)
    assert len(after) == n
    table = achieved_distribution(rows, after, sampler)
    for _, group in table.groupby("distribution"):
        assert np.abs(group["achieved"] - group["target"]).max() < 0.002  # quotas: rounding only
    # Before resampling they were far off.
    assert np.abs(table["before"] - table["target"]).max() > 0.1
    again = EqualDistribution(seed=3).resample(rows)
    assert again.index.equals(after.index)
    small = rows.iloc[:300]  # a few hundred rows: still at the targets, up to rounding
    table = achieved_distribution(small, EqualDistribution(seed=0).resample(small), EqualDistribution())
    race = table[table["distribution"] == "race"]
    assert np.abs(race["achieved"] - race["target"]).max() < 0.01


def test_model_ids_round_trip_and_the_subset_is_in_them():
    tabular = TabularModel("synth", "combined", "xgboost", 2)
    retrain = RetrainModel("synth", "resnet18", "nofinding", 0)
    assert model(tabular.path) == tabular and model(retrain.path) == retrain
    assert "nofinding" in retrain.path
    assert retrain.test_subset.to_dict()["where"] == {"No Finding": [1]}
    assert RetrainModel("synth", "resnet18", "equal", 0).test_subset.to_dict()["where"] == {}
    assert sorted([retrain, tabular]) == [retrain, tabular]


def test_boneclip_clips_the_raw_cache_values_before_anything_else():
    # The cache holds [0, 1] intensities and nothing normalises them on the way to the
    # network: the paper's code clipped after ImageNet normalisation, so its "no clipping"
    # baseline still clipped. Here boneclip-0.6 is the first transform of training and the
    # only one of evaluation, on raw values.
    x = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    train, evaluate = perturb_and_augment("boneclip-0.6", augment=True)
    out = evaluate({"image": x, "index": np.array([0])}, {"perturb": None})["image"]
    torch.testing.assert_close(out, x.clamp(max=0.6) / 0.6)
    assert train.transforms[0].id == "boneclip-0.6"
    baseline = perturb_and_augment("none", augment=False)[1]({"image": x, "index": np.array([0])}, {"perturb": None})["image"]
    torch.testing.assert_close(baseline, x)  # the baseline is not clipped


def test_omr_bmi_is_matched_in_time_and_every_study_is_counted():
    from readrace.confounders.variables import match_omr_bmi

    omr = pd.DataFrame([
        # subject 1: a recorded BMI near the first study, a height and weight near the second.
        ("1", "2150-01-10", 1, "BMI (kg/m2)", "31.2"),
        ("1", "2150-01-10", 1, "Weight (Lbs)", "200"),
        ("1", "2151-06-01", 1, "Height (Inches)", "70"),
        ("1", "2151-06-01", 1, "Weight (Lbs)", "175"),
        ("1", "2151-06-01", 2, "Weight (Lbs)", "999"),  # a later entry of the same day is not used
        # subject 2: only far from the study; subject 3: a blood pressure, no BMI.
        ("2", "2140-01-01", 1, "BMI (kg/m2)", "24"),
        ("3", "2150-01-01", 1, "Blood Pressure", "120/80"),
    ], columns=["subject_id", "chartdate", "seq_num", "result_name", "result_value"])
    studies = pd.DataFrame({"subject_id": ["1", "1", "2", "3", "4"], "study_id": ["a", "b", "c", "d", "e"],
                            "StudyDate": ["21500115", "21510520", "21500101", "21500101", "21500101"]})
    matched, counts = match_omr_bmi(studies, omr, window_days=30)
    bmi = matched.set_index("study_id")["bmi"]
    assert bmi["a"] == pytest.approx(31.2)
    assert bmi["b"] == pytest.approx(703 * 175 / 70**2)
    assert bmi[["c", "d", "e"]].isna().all()
    assert matched.set_index("study_id").loc["a", "bmi_days"] == -5
    assert counts["studies"].tolist() == [1, 1, 1, 2] and counts["studies"].sum() == len(studies)
    wider, _ = match_omr_bmi(studies, omr, window_days=5000)
    assert wider.set_index("study_id")["bmi"]["c"] == 24
    # Each study's outcome is in the matched table, so the manifest (bmi_source) can keep it.
    assert matched["bmi_outcome"].value_counts().to_dict() == dict(zip(counts["outcome"], counts["studies"]))


def test_variable_coverage_counts_every_study_by_source():
    from readrace.confounders.variables import OMR_PREFIX, variable_coverage

    manifest = pd.DataFrame({
        "patient_id": ["p1", "p1", "p2", "p3", "p4"], "study_id": ["s1", "s1", "s2", "s3", "s4"],
        "bmi": [31.0, 31.0, 24.0, np.nan, np.nan],
        "bmi_source": [OMR_PREFIX + "matched: recorded BMI"] * 2 + [OMR_PREFIX + "matched: from height and weight",
                                                                   OMR_PREFIX + "unmatched: no measurement", None],
        "breast_density": ["A", "A", None, "C", None],
    })
    table = variable_coverage(manifest, "mxr").set_index(["variable", "source"])
    assert table.loc[("bmi", "omr matched: recorded BMI"), ["studies", "patients", "images"]].tolist() == [1, 1, 2]
    assert table.loc[("bmi", "omr unmatched: no measurement"), "studies"] == 1
    assert table.loc[("bmi", "missing"), "studies"] == 1  # no source named, no value
    assert table.loc[("breast_density", "dataset"), "studies"] == 2
    for variable in ("bmi", "breast_density"):
        assert table.loc[variable, "studies"].sum() == 4  # every study once
    generic = variable_coverage(manifest.drop(columns="bmi_source"), "generic").set_index(["variable", "source"])
    assert generic.loc[("bmi", "dataset"), "studies"] == 2 and set(generic["dataset"]) == {"generic"}


def test_acquisition_by_manufacturer_ids_rows_and_a_clear_error():
    from readrace.confounders import acquisition
    from readrace.experiments import confounders

    assert acquisition.slug("GE MEDICAL SYSTEMS") == "ge-medical-systems"
    retrain = RetrainModel("mxr", "resnet18", acquisition.subset_name("Philips Medical Systems"), 0)
    assert model(retrain.path) == retrain and retrain.by_manufacturer and not retrain.resampled
    assert retrain.split_subset("train", "Philips Medical Systems").to_dict()["where"] == {
        "manufacturer": ["Philips Medical Systems"]}
    assert retrain.test_subset.to_dict()["where"] == {}  # scored within each manufacturer afterwards
    with pytest.raises(ValueError, match="manufacturer"):
        retrain.split_subset("train")
    manifest = pd.DataFrame({"manufacturer": ["Acme", "Acme", "Zenith"], "split": ["train", "validation", "test"]})
    assert acquisition.manufacturer_rows(manifest, "train", "Acme", dataset="mxr").mask(manifest).tolist() == [
        True, False, False]
    with pytest.raises(ValueError, match=r"manufacturers.mxr: manufacturer 'Acne' .*'Acme', 'Zenith'"):
        acquisition.manufacturer_rows(manifest, "train", "Acne", dataset="mxr")
    with pytest.raises(ValueError, match="no image in the train split"):
        acquisition.manufacturer_rows(manifest, "train", "Zenith", dataset="mxr")
    config = {"datasets": {"mxr": {"modality": "cxr", "split": {"train": 0.6, "validation": 0.1, "test": 0.3}}},
              "confounders": {"strata": {"variables": ["bmi"], "bands": {}, "intersections": True, "min_patients": 4}},
              "experiments": [{"kind": "confounders", "datasets": ["mxr"], "features": [], "estimators": ["logistic"],
                               "stratify": False, "retrain": [], "archs": ["resnet18"], "seeds": [0, 1],
                               "manufacturers": {"mxr": ["Philips Medical Systems", "Agfa"]}}]}
    models = confounders.manufacturer_models(config)
    assert len(models) == 4 and retrain in models
    assert confounders.manufacturer_of(config, "mxr", retrain.subset) == "Philips Medical Systems"
    assert confounders.strata_settings(config, retrain.path)["variables"] == ["manufacturer"]
    assert confounders.strata_settings(config, "race_detection/mxr/resnet18/none/seed0")["variables"] == ["bmi"]
    assert paths_of(confounders.strata_files(config)) == {m.path for m in models}
    block = {**config["experiments"][0], "manufacturers": {"cxp": ["Agfa"], "mxr": ["A g", "a-g"]}}
    problems = confounders.check(0, block, config)
    assert any("'cxp' is not one of the block's datasets" in p for p in problems)
    assert any("share the folder 'a-g'" in p for p in problems)


def paths_of(strata_files: list[str]) -> set[str]:
    return {f.removeprefix("results/confounders/strata/").rsplit("/", 1)[0] for f in strata_files}


def test_second_manufacturer_is_off_by_default_and_checked():
    from readrace.synthetic.sites import SITES, second_manufacturer
    from readrace.synthetic.spec import CohortSpec

    assert CohortSpec.from_options("cxr", {}).second_manufacturer == 0.0
    assert CohortSpec.from_options("cxr", {"second_manufacturer": 0.4}).second_manufacturer == 0.4
    with pytest.raises(ValueError, match="second_manufacturer"):
        CohortSpec.from_options("cxr", {"second_manufacturer": 1.5})
    base = SITES["cxr"]["A"]
    other = second_manufacturer(base)
    # Another vendor on the same grid: the planted class patterns stay the same.
    assert other.manufacturer != base.manufacturer and other.shape == base.shape
    assert (other.photometric, other.bits_stored) != (base.photometric, base.bits_stored)


def test_bmi_by_race_plants_a_bmi_confounder_and_is_off_by_default():
    from readrace.synthetic.population import sample_records
    from readrace.synthetic.spec import CohortSpec

    default, _ = sample_records(400, "cxr", 3)
    explicit, _ = sample_records(400, "cxr", 3, None)
    pd.testing.assert_frame_equal(default, explicit)
    strong, _ = sample_records(400, "cxr", 3, {"Asian": 20.0, "Black": 34.0, "White": 27.0, "sd": 1.0})
    means = strong.groupby("race")["bmi"].mean()
    assert means["Asian"] < 21 < 26 < means["White"] < 28 < 33 < means["Black"]
    assert (strong["race"] == default["race"]).all()  # only BMI changes
    spec = CohortSpec.from_options("cxr", {"bmi_by_race": {"Black": 30, "sd": 2}})
    assert spec.bmi_by_race == (("Black", 30), ("sd", 2))
    assert CohortSpec.from_options("cxr", {}).bmi_by_race is None
    with pytest.raises(ValueError, match="bmi_by_race"):
        CohortSpec.from_options("cxr", {"bmi_by_race": {"Martian": 30}})
