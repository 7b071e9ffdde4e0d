"""Known-answer tests of the synthetic DICOM cohort generator (readrace.synthetic).

Cohorts are tiny (a few patients) except for the learnability test (120 patients), and
are generated once per module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_rescale
from pydicom.uid import (
    BasicTextSRStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from readrace import labels
from readrace.synthetic import (
    CohortSpec,
    SignalSpec,
    generate_cohort,
    get_site,
    sample_population,
)
from readrace.synthetic.signal import class_pattern

SITES = [("cxr", "A"), ("cxr", "B"), ("ct", "A"), ("mammo", "A")]
BROKEN_KINDS = {"truncated", "no-pixel-data", "non-image", "not-dicom"}

# The documented stored-value maps, written out independently of the package.
EXPECTED_STORED = {
    ("cxr", "A"): lambda t: np.rint(80 + 3920 * t.astype(np.float64)),
    ("cxr", "B"): lambda t: 1023 - np.rint(30 + 960 * t.astype(np.float64)),
    ("ct", "A"): lambda t: np.rint(t.astype(np.float64) + 1024),
    ("mammo", "A"): lambda t: np.rint(60 + 3960 * t.astype(np.float64)),
}
# Per-site header attributes the tests pin down.
EXPECTED_HEADER = {
    ("cxr", "A"): dict(Modality="DX", Manufacturer="Northwind Medical", Rows=256, Columns=256,
                       BitsAllocated=16, BitsStored=12, PixelRepresentation=0,
                       PhotometricInterpretation="MONOCHROME2", RescaleSlope=1.0,
                       RescaleIntercept=0.0, PixelSpacing=[1.4, 1.4]),
    ("cxr", "B"): dict(Modality="CR", Manufacturer="Contoso Imaging", Rows=240, Columns=200,
                       BitsAllocated=16, BitsStored=10, PixelRepresentation=0,
                       PhotometricInterpretation="MONOCHROME1", RescaleSlope=2.0,
                       RescaleIntercept=-100.0, PixelSpacing=[1.6, 1.6]),
    ("ct", "A"): dict(Modality="CT", Rows=64, Columns=64, BitsAllocated=16, BitsStored=16,
                      PixelRepresentation=1, PhotometricInterpretation="MONOCHROME2",
                      RescaleSlope=1.0, RescaleIntercept=-1024.0, SliceThickness=10.0,
                      ImageOrientationPatient=[1, 0, 0, 0, 1, 0]),
    ("mammo", "A"): dict(Modality="MG", Rows=192, Columns=160, BitsAllocated=16, BitsStored=12,
                         PixelRepresentation=0, PhotometricInterpretation="MONOCHROME2",
                         PatientSex="F"),
}
EXPECTED_SYNTAX = {("cxr", "A"): ExplicitVRLittleEndian, ("cxr", "B"): JPEG2000Lossless,
                   ("ct", "A"): RLELossless, ("mammo", "A"): ExplicitVRLittleEndian}


def _generate(tmp: Path, name: str, **kwargs) -> tuple[Path, pd.DataFrame]:
    out = tmp / name
    truth = generate_cohort(CohortSpec(**kwargs), out, progress=False)
    return out, truth


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _images(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[truth["kind"] == "image"]


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> dict[tuple[str, str], tuple[Path, pd.DataFrame]]:
    tmp = tmp_path_factory.mktemp("cohorts")
    return {(m, s): _generate(tmp, f"{m}-{s}", modality=m, site=s, n_patients=3, seed=5,
                              write_truth=True)
            for m, s in SITES}


# -- specs ---------------------------------------------------------------------------------


def test_from_options_parses_config_values():
    spec = CohortSpec.from_options("cxr", {
        "site": "B", "patients": 7, "seed": 3, "broken_files": False,
        "signal": {"strength": 0.5, "bands": "low", "region": "grid-1-2", "seed": 9}})
    assert spec == CohortSpec("cxr", site="B", n_patients=7, seed=3, broken_files=False,
                              signal=SignalSpec(0.5, ((2.0, 6.0),), "grid-1-2", 9))
    spec = CohortSpec.from_options("ct", {"signal": {"bands": [[10, 20], [1, 3]]}})
    assert spec.signal.bands == ((1.0, 3.0), (10.0, 20.0))
    assert CohortSpec.from_options("mammo", None) == CohortSpec("mammo")
    assert CohortSpec.from_options("cxr", {"signal": {"bands": "all"}}).signal.bands == (
        (2.0, 6.0), (12.0, 24.0))


@pytest.mark.parametrize("modality, options, message", [
    ("cxr", {"patient": 5}, r"unknown synthetic option\(s\) patient;"),
    ("cxr", {"signal": {"strenght": 1}}, r"unknown synthetic option\(s\) signal.strenght;"),
    ("cxr", {"site": "C"}, r"'site'"),
    ("ct", {"site": "B"}, r"'site'"),
    ("xr", {}, r"'modality'"),
    ("cxr", {"patients": 0}, r"'patients'"),
    ("cxr", {"patients": "ten"}, r"'patients'"),
    ("cxr", {"seed": -1}, r"'seed'"),
    ("cxr", {"broken_files": "yes"}, r"'broken_files'"),
    ("cxr", {"signal": {"strength": -1}}, r"'signal.strength'"),
    ("cxr", {"signal": {"bands": [[20, 30]]}}, r"'signal.bands'"),
    ("cxr", {"signal": {"bands": [[2, 8], [6, 10]]}}, r"'signal.bands'"),
    ("cxr", {"signal": {"bands": "middle"}}, r"'signal.bands'"),
    ("cxr", {"signal": {"region": "grid-3-0"}}, r"'signal.region'"),
    ("cxr", {"signal": {"seed": 1.5}}, r"'signal.seed'"),
    ("mammo", {"signal": {"region": "lung"}}, r"'signal.region'"),
])
def test_from_options_rejects_bad_keys_and_values(modality, options, message):
    with pytest.raises(ValueError, match=message):
        CohortSpec.from_options(modality, options)


def test_refuses_to_write_into_a_non_empty_folder(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate_cohort(CohortSpec("cxr", n_patients=1), tmp_path, progress=False)


# -- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("modality, site", [("cxr", "B"), ("ct", "A")])
def test_same_spec_gives_identical_files_and_another_seed_does_not(tmp_path, modality, site):
    spec = CohortSpec(modality, site=site, n_patients=2, seed=11, write_truth=True)
    generate_cohort(spec, tmp_path / "a", progress=False)
    generate_cohort(spec, tmp_path / "b", progress=False)
    first = _digests(tmp_path / "a")
    assert first == _digests(tmp_path / "b")
    assert len(first) > 8

    other = generate_cohort(replace(spec, seed=12), tmp_path / "c", progress=False)
    patients_a = pd.read_csv(tmp_path / "a" / "patients.csv")
    patients_c = pd.read_csv(tmp_path / "c" / "patients.csv")
    assert set(patients_a["PatientID"]).isdisjoint(patients_c["PatientID"])
    image_a = pd.read_csv(tmp_path / "a" / "truth.csv").query("kind == 'image'").iloc[0]
    image_c = _images(other).iloc[0]
    pixels_a = pydicom.dcmread(tmp_path / "a" / image_a["path"]).pixel_array
    pixels_c = pydicom.dcmread(tmp_path / "c" / image_c["path"]).pixel_array
    assert pixels_a.shape == pixels_c.shape
    assert np.mean(pixels_a != pixels_c) > 0.5


# -- the files and the truth table ---------------------------------------------------------


@pytest.mark.parametrize("site", SITES, ids=lambda s: "-".join(s))
def test_truth_table_lists_exactly_the_files_written(cohorts, site):
    out, truth = cohorts[site]
    modality = site[0]
    on_disk = {str(p.relative_to(out)) for p in (out / "dicom").rglob("*") if p.is_file()}
    assert on_disk == set(truth["path"])
    assert len(truth) == len(on_disk)
    assert truth["kind"].value_counts().to_dict() == {
        "image": len(_images(truth)), **{kind: 1 for kind in BROKEN_KINDS}}
    assert all(re.fullmatch(r"dicom/p\d{5}/s\d{2}/.+", p) for p in truth["path"])

    patients = pd.read_csv(out / "patients.csv")
    studies = pd.read_csv(out / "studies.csv")
    assert list(patients.columns) == ["PatientID", "race", "ethnicity", "sex", "bmi"]
    assert set(truth["PatientID"]) <= set(patients["PatientID"])
    assert set(truth["StudyInstanceUID"]) <= set(studies["StudyInstanceUID"])
    assert truth["SOPInstanceUID"].dropna().is_unique

    images = _images(truth)
    race = images["PatientID"].map(patients.set_index("PatientID")["race"])
    assert (images["race"] == race).all()
    planted = race.where(race.isin(labels.task_classes(modality)), "")
    assert (images["signal_class"].fillna("") == planted).all()

    sops = set(images["SOPInstanceUID"])
    assert {p.stem for p in (out / "truth").glob("*.npy")} == sops
    if modality in ("cxr", "ct"):
        assert {p.stem for p in (out / "masks").glob("*.npy")} == sops
        masks = np.stack([np.load(out / "masks" / f"{sop}.npy") for sop in sops])
        assert masks.dtype == np.uint8 and masks.shape[1:] == get_site(*site).shape
        assert set(np.unique(masks)) == {0, 1}
        assert 0.08 < masks.mean() < 0.5
    else:
        assert not (out / "masks").exists()
    if modality == "cxr":
        assert list(studies.columns[3:]) == list(labels.FINDINGS)
        assert set(images["view"]) <= {"PA", "AP"}
    if modality == "mammo":
        assert set(patients["sex"]) == {"F"}
        assert set(studies["breast_density"]) <= set(labels.BREAST_DENSITY)
        per_study = images.groupby("StudyInstanceUID")[["laterality", "view"]]
        assert all(sorted(zip(g["laterality"], g["view"])) ==
                   [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
                   for _, g in per_study)


@pytest.mark.parametrize("site", SITES, ids=lambda s: "-".join(s))
def test_image_headers_carry_phi_and_the_site_profile(cohorts, site):
    out, truth = cohorts[site]
    studies = pd.read_csv(out / "studies.csv").set_index("StudyInstanceUID")
    patients = pd.read_csv(out / "patients.csv").set_index("PatientID")
    for row in _images(truth).itertuples():
        ds = pydicom.dcmread(out / row.path)
        assert (out / row.path).read_bytes()[128:132] == b"DICM"
        assert ds.file_meta.TransferSyntaxUID == EXPECTED_SYNTAX[site]
        assert ds.SOPInstanceUID == row.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        for keyword, value in EXPECTED_HEADER[site].items():
            assert ds[keyword].value == value, keyword
        assert re.fullmatch(r"MRN\d{8}", ds.PatientID) and ds.PatientID == row.PatientID
        assert re.fullmatch(r"[A-Z]+\^[A-Z]+", str(ds.PatientName))
        for keyword in ("AccessionNumber", "InstitutionName", "ReferringPhysicianName"):
            assert str(ds[keyword].value).strip(), keyword
        assert ds.PatientSex == patients.loc[row.PatientID, "sex"]
        # Birth date, study date and age agree with each other and with studies.csv.
        birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
        day = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
        age = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
        assert age == int(ds.PatientAge[:3]) == studies.loc[row.StudyInstanceUID, "age"]
        if site == ("cxr", "A"):
            assert (ds.WindowCenter, ds.WindowWidth) == (2048.0, 4096.0)
        if site == ("cxr", "B"):
            assert "WindowCenter" not in ds
        if site[0] in ("cxr", "mammo"):
            assert ds.ViewPosition == row.view
        if site[0] == "mammo":
            assert ds.ImageLaterality == row.laterality
        if site[0] == "ct":
            assert float(ds.ImagePositionPatient[2]) == pytest.approx(row.slice_z)


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
@pytest.mark.parametrize("site", SITES, ids=lambda s: "-".join(s))
def test_broken_files_fail_the_way_their_kind_says(cohorts, site):
    out, truth = cohorts[site]
    path = {row.kind: out / row.path for row in truth.itertuples()}
    with pytest.raises((ValueError, AttributeError)):
        pydicom.dcmread(path["truncated"]).pixel_array
    no_pixels = pydicom.dcmread(path["no-pixel-data"])
    assert no_pixels.SOPClassUID == get_site(*site).sop_class_uid
    assert "PixelData" not in no_pixels and no_pixels.Rows == get_site(*site).rows
    report = pydicom.dcmread(path["non-image"])
    assert report.SOPClassUID == BasicTextSRStorage and "PixelData" not in report
    assert path["not-dicom"].suffix == ".txt"
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(path["not-dicom"])


def test_ct_series_must_be_sorted_by_image_position(cohorts):
    out, truth = cohorts[("ct", "A")]
    images = _images(truth)
    shuffled_instances = 0
    for _, series in images.groupby("SeriesInstanceUID"):
        assert len(series) == 16
        headers = [pydicom.dcmread(out / p, stop_before_pixels=True) for p in series["path"]]
        z = np.array([float(h.ImagePositionPatient[2]) for h in headers])
        instance = np.array([int(h.InstanceNumber) for h in headers])
        by_name = np.argsort(series["path"].to_numpy())
        by_z = np.argsort(-z)
        assert not np.array_equal(by_name, by_z) and not np.array_equal(by_name, by_z[::-1])
        assert np.allclose(np.diff(np.sort(z)), 10.0)
        ordered = instance[by_z]
        monotonic = np.all(np.diff(ordered) > 0) or np.all(np.diff(ordered) < 0)
        shuffled_instances += not monotonic
        assert len({h.FrameOfReferenceUID for h in headers}) == 1
    assert shuffled_instances >= 1  # known for seed 5


# -- pixels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("site", SITES, ids=lambda s: "-".join(s))
def test_stored_pixels_follow_the_documented_map_from_truth(cohorts, site):
    out, truth = cohorts[site]
    for row in _images(truth).itertuples():
        ds = pydicom.dcmread(out / row.path)
        stored = ds.pixel_array.astype(np.int64)
        intended = np.load(out / "truth" / f"{row.SOPInstanceUID}.npy")
        assert intended.dtype == np.float32 and intended.shape == stored.shape
        assert np.array_equal(stored, EXPECTED_STORED[site](intended).astype(np.int64))

        modality_value = apply_rescale(ds.pixel_array, ds)
        if site[0] == "ct":  # truth is in HU, exact up to rounding
            assert np.max(np.abs(modality_value - intended)) <= 0.5 + 1e-6
            continue
        # What a decoder returns after min-max normalisation matches min-max(truth) to
        # within the quantisation step (MONOCHROME1 displays inverted).
        inverted = ds.PhotometricInterpretation == "MONOCHROME1"
        display = -modality_value if inverted else modality_value
        display = (display - display.min()) / np.ptp(display)
        reference = (intended - intended.min()) / np.ptp(intended)
        profile = get_site(*site)
        step = 1.0 / ((profile.stored_high - profile.stored_low) * np.ptp(intended))
        assert np.max(np.abs(display - reference)) <= 2.0 * step


def test_anatomy_is_plausible_in_hounsfield_units(cohorts):
    out, truth = cohorts[("ct", "A")]
    row = _images(truth).iloc[0]
    hu = np.load(out / "truth" / f"{row.SOPInstanceUID}.npy")
    lung = np.load(out / "masks" / f"{row.SOPInstanceUID}.npy").astype(bool)
    assert -900 < np.median(hu[lung]) < -780
    assert -1030 < np.median(hu[0:3, :]) < -970  # air above the body
    assert hu.max() > 500  # bone


# -- the planted signal ----------------------------------------------------------------------


def test_class_patterns_are_fixed_zero_mean_unit_rms_and_resolution_independent():
    signal = SignalSpec()
    fine = class_pattern(signal, 0, (256, 256))
    coarse = class_pattern(signal, 0, (64, 64))
    # k cycles/image is the same pattern on any grid: the 64-grid samples every 4th pixel.
    np.testing.assert_allclose(fine[::4, ::4], coarse, atol=1e-9)
    assert abs(fine.mean()) < 1e-12 and np.sqrt(np.mean(fine**2)) == pytest.approx(1.0)
    other = class_pattern(signal, 1, (256, 256))
    assert abs(np.corrcoef(fine.ravel(), other.ravel())[0, 1]) < 0.5
    assert not np.allclose(class_pattern(replace(signal, seed=1), 0, (64, 64)), coarse)


def _signal_differences(tmp: Path, modality: str, site: str, signal: SignalSpec,
                        n_patients: int = 3) -> list[tuple[pd.Series, np.ndarray, Path]]:
    """(truth row, truth with signal - truth without, cohort folder) for every image."""
    kwargs = dict(modality=modality, site=site, n_patients=n_patients, seed=8,
                  broken_files=False, write_truth=True)
    with_signal, truth = _generate(tmp, "with", signal=signal, **kwargs)
    without, _ = _generate(tmp, "without", signal=replace(signal, strength=0.0), **kwargs)
    return [(row, np.load(with_signal / "truth" / f"{row.SOPInstanceUID}.npy").astype(np.float64)
             - np.load(without / "truth" / f"{row.SOPInstanceUID}.npy"), with_signal)
            for _, row in _images(truth).iterrows()]


@pytest.mark.parametrize("modality, region", [
    ("cxr", "lung"), ("cxr", "nonlung"), ("ct", "lung"), ("mammo", "grid-0-2"),
])
def test_region_confines_the_pattern_energy(tmp_path, modality, region):
    checked = 0
    differences = _signal_differences(tmp_path, modality, "A", SignalSpec(region=region))
    for row, diff, folder in differences:
        if pd.isna(row["signal_class"]):
            assert np.all(diff == 0)  # Other/Unknown patients get no pattern
            continue
        if region == "grid-0-2":
            rows, cols = diff.shape
            inside = np.zeros(diff.shape, dtype=bool)
            inside[: rows // 3, 2 * cols // 3:] = True
        else:
            inside = np.load(folder / "masks" / f"{row['SOPInstanceUID']}.npy").astype(bool)
            if region == "nonlung":
                inside = ~inside
        energy = diff**2
        assert energy.sum() > 0
        assert energy[inside].sum() / energy.sum() > 0.85
        checked += 1
    assert checked >= 3


def test_signal_energy_lies_in_the_requested_band_on_a_non_square_grid(tmp_path):
    checked = 0
    for row, diff, _ in _signal_differences(tmp_path, "cxr", "B", SignalSpec(bands=((2.0, 6.0),))):
        if pd.isna(row["signal_class"]):
            continue
        rows, cols = diff.shape
        power = np.abs(np.fft.fft2(diff)) ** 2
        ky = np.fft.fftfreq(rows)[:, None] * rows  # cycles per image height
        kx = np.fft.fftfreq(cols)[None, :] * cols  # cycles per image width
        radius = np.hypot(ky, kx)
        assert power[(radius >= 2) & (radius < 6)].sum() / power.sum() > 0.99
        # Amplitude: about 1.5 % of the [0, 1] intensity range (RMS), with a small jitter.
        assert 0.012 < np.sqrt(np.mean(diff**2)) < 0.018
        checked += 1
    assert checked >= 2


def test_default_bands_share_the_energy_equally(tmp_path):
    for row, diff, _ in _signal_differences(tmp_path, "cxr", "A", SignalSpec(), n_patients=2):
        if pd.isna(row["signal_class"]):
            continue
        power = np.abs(np.fft.fft2(diff)) ** 2
        k = np.fft.fftfreq(diff.shape[0]) * diff.shape[0]
        radius = np.hypot(k[:, None], k[None, :])
        low = power[(radius >= 2) & (radius < 6)].sum() / power.sum()
        high = power[(radius >= 12) & (radius < 24)].sum() / power.sum()
        assert low == pytest.approx(0.5, abs=0.03) and high == pytest.approx(0.5, abs=0.03)


def _block_mean(image: np.ndarray, size: int = 32) -> np.ndarray:
    rows, cols = image.shape
    return image.reshape(size, rows // size, size, cols // size).mean(axis=(1, 3))


def _image_auc(folder: Path, truth: pd.DataFrame) -> float:
    """Macro one-vs-rest AUC of a logistic regression on 32x32 images, held-out patients."""
    images = _images(truth).dropna(subset=["signal_class"])
    X = np.stack([_block_mean(np.load(folder / "truth" / f"{uid}.npy")).ravel()
                  for uid in images["SOPInstanceUID"]])
    y = images["signal_class"].to_numpy()
    patients = np.sort(images["PatientID"].unique())
    held_out = np.random.default_rng(0).choice(patients, size=len(patients) // 3, replace=False)
    test = images["PatientID"].isin(held_out).to_numpy()
    scaler = StandardScaler().fit(X[~test])
    model = LogisticRegression(C=0.01, max_iter=2000).fit(scaler.transform(X[~test]), y[~test])
    scores = model.predict_proba(scaler.transform(X[test]))
    return roc_auc_score(y[test], scores, multi_class="ovr", average="macro", labels=model.classes_)


def test_planted_signal_is_learnable_and_its_absence_is_not(tmp_path):
    kwargs = dict(modality="cxr", site="A", n_patients=120, seed=21, broken_files=False,
                  write_truth=True)
    folder, truth = _generate(tmp_path, "signal", signal=SignalSpec(strength=1.0), **kwargs)
    assert set(_images(truth)["signal_class"].dropna()) == {"Asian", "Black", "White"}
    assert _image_auc(folder, truth) > 0.8
    folder, truth = _generate(tmp_path, "control", signal=SignalSpec(strength=0.0), **kwargs)
    assert _image_auc(folder, truth) < 0.65


# -- population ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def population() -> tuple[pd.DataFrame, pd.DataFrame]:
    return sample_population(5000, "cxr", 0)


def test_confounders_predict_race_only_weakly(population):
    patients, studies = population
    data = studies.merge(patients, on="PatientID")
    data = data[data["race"].isin(labels.task_classes("cxr"))]
    X = np.column_stack([data["age"], data["sex"] == "F", data["bmi"],
                         data[list(labels.FINDINGS)]]).astype(float)
    y = data["race"].to_numpy()
    held_out = np.random.default_rng(0).choice(patients["PatientID"], size=1500, replace=False)
    test = data["PatientID"].isin(held_out).to_numpy()
    scaler = StandardScaler().fit(X[~test])
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(X[~test]), y[~test])
    auc = roc_auc_score(y[test], model.predict_proba(scaler.transform(X[test])),
                        multi_class="ovr", average="macro", labels=model.classes_)
    assert 0.53 <= auc <= 0.70


def test_population_mix_and_tables(population):
    patients, studies = population
    share = patients["race"].value_counts(normalize=True)
    for race, expected in {"Asian": 0.2, "Black": 0.3, "White": 0.4, "Other": 0.05,
                           "Unknown": 0.05}.items():
        assert share[race] == pytest.approx(expected, abs=0.025)
    assert (patients["ethnicity"] == labels.HISPANIC).mean() == pytest.approx(0.06, abs=0.015)
    assert patients["PatientID"].is_unique and studies["StudyInstanceUID"].is_unique
    assert set(studies.groupby("PatientID").size()) == {1, 2, 3}
    findings = studies[list(labels.FINDINGS)]
    assert set(np.unique(findings.to_numpy())) == {0.0, 1.0}
    pathology = findings.drop(columns=["No Finding", "Support Devices"]).any(axis=1)
    assert (studies["No Finding"] == (~pathology).astype(float)).all()

    small = sample_population(300, "cxr", 0)
    again = sample_population(300, "cxr", 0)
    pd.testing.assert_frame_equal(again[0], small[0])
    pd.testing.assert_frame_equal(again[1], small[1])
    assert not sample_population(300, "cxr", 1)[0]["bmi"].equals(small[0]["bmi"])

    mammo_patients, mammo_studies = sample_population(2000, "mammo", 1)
    assert set(mammo_patients["sex"]) == {"F"}
    assert set(mammo_patients["race"]) == {"Black", "White", "Other", "Unknown"}
    density = mammo_studies["breast_density"].value_counts(normalize=True)
    assert density["B"] > density["A"] and density["C"] > density["D"]


def test_cohort_tables_are_the_sampled_population(cohorts):
    out, truth = cohorts[("mammo", "A")]
    pd.testing.assert_frame_equal(truth, pd.read_csv(out / "truth.csv"))
    patients, studies = sample_population(3, "mammo", 5)
    pd.testing.assert_frame_equal(pd.read_csv(out / "patients.csv"), patients)
    pd.testing.assert_frame_equal(pd.read_csv(out / "studies.csv"), studies)


def test_uids_of_different_coordinates_never_collide():
    # pydicom joins entropy sources with no separator: ("sop", 1, 11) and ("sop", 11, 1)
    # collided before the coordinates were joined with one (seen on a 60-patient CT cohort).
    from readrace.synthetic.dicom_writer import make_uid

    assert make_uid("ct", "A", 13, "sop", 1, 11, 1, 0) != make_uid("ct", "A", 13, "sop", 11, 1, 1, 0)
    uids = {make_uid("ct", "A", 13, "sop", p, s, 1, k) for p in range(40) for s in range(1, 3) for k in range(16)}
    assert len(uids) == 40 * 2 * 16
