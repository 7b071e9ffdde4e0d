"""Real-dataset adapters on tiny fixtures written in each dataset's official schema.

Each fixture writes the provider's tables with their real file and column names (a few rows)
and 16x16 grayscale images (JPEG/PNG via PIL, DICOM via pydicom), then checks the listing,
the study and file tables, every race and exclusion rule, the DatasetErrors, and, for
several adapters, ingest_shard end to end with the quarantine reasons and summarize.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from readrace.ingest.adapters import DatasetError, make_adapter
from readrace.ingest.adapters.racemap import (
    CONFLICTING_RACE,
    NOT_HISPANIC,
    is_hispanic,
    map_ethnicity,
    map_race,
    map_sex,
    patient_race,
)
from readrace.data.pseudonym import file_id
from readrace.ingest.gather import summarize
from readrace.ingest.shard import ingest_shard
from readrace.labels import FINDINGS, HISPANIC
from readrace.data.splits import assign_splits

SALT = "salt-for-tests"
SPLIT = {"train": 0.6, "validation": 0.1, "test": 0.3}
NO_RECORD = "no demographics record: its patient and study are not in the dataset's tables"
#: A JPEG/PNG on disk that the tables do not list has no keys at all (raster files carry no header).
NO_KEYS = "no patient or study id in the file or the dataset's tables"


# --------------------------------------------------------------------------- fixture helpers


def write_raster(path: Path, seed: int = 0) -> None:
    """A 16x16 grayscale gradient (never constant) as JPEG or PNG, by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.add.outer(np.arange(16), np.arange(16)) * 7 + seed) % 256
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(path, quality=95)


def write_dicom(path: Path, patient: str, study: str, modality: str = "DX", series: str = "1", z: float = 0.0) -> None:
    """A 16x16 DICOM image; UIDs come from the names, so runs write the same bytes."""
    sop_class = {
        "DX": DigitalXRayImageStorageForPresentation,
        "MG": DigitalMammographyXRayImageStorageForPresentation,
        "CT": CTImageStorage,
    }[modality]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[study, series])
    ds.PatientID = patient
    ds.Modality = modality
    pixels = (np.add.outer(np.arange(16), np.arange(16)) * 50).astype(np.uint16)
    ds.set_pixel_data(pixels, "MONOCHROME2", 16, generate_instance_uid=False)
    if modality == "CT":
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.InstanceNumber = int(z) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_csv(path: Path, rows: list[dict], compress: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False, compression="gzip" if compress else None)


def paths_by_id(files: list[str]) -> dict[str, str]:
    """The map back from file_id to path (the private listing's), computed independently."""
    return {file_id(path, SALT): path for path in files}


def reasons(result, files: list[str]) -> dict[str, str]:
    """Source path -> public reason of every quarantined file."""
    paths = paths_by_id(files)
    return {paths[f]: reason for f, reason in zip(result.quarantine["file_id"], result.quarantine["reason"])}


def rows_by_path(result, files: list[str]) -> pd.DataFrame:
    return result.rows.set_index(result.rows["file_id"].map(paths_by_id(files)).rename("path"))


def kept(result, files: list[str]) -> list[str]:
    return sorted(rows_by_path(result, files).index)


def check_accounted(result, files: list[str]) -> None:
    """Every file is in the rows or the quarantine, never both, named by its file_id."""
    ingested, quarantined = set(result.rows["file_id"]), set(result.quarantine["file_id"])
    assert ingested | quarantined == set(paths_by_id(files))
    assert not ingested & quarantined
    assert len(result.rows) == result.images.shape[0]
    assert "path" not in result.rows and "path" not in result.quarantine


def summarized(files: list[str], result) -> pd.DataFrame:
    """summarize() on the shard, with the patient splits gather_shards would add."""
    rows = result.rows.assign(split=assign_splits(result.rows["patient_id"], SPLIT, "split-salt").to_numpy())
    return summarize(pd.DataFrame({"path": files}), rows, result.quarantine)


def summary_counts(files: list[str], result) -> dict[tuple[str, str], int]:
    summary = summarized(files, result)
    return {(g, v): c for g, v, c in zip(summary["group"], summary["value"], summary["count"])}


def study(table: pd.DataFrame, patient: str, study_key: str | None = None) -> pd.Series:
    rows = table[(table["patient_key"] == patient) & (table["study_key"] == (study_key or table["study_key"]))]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# --------------------------------------------------------------------------- racemap


@pytest.mark.parametrize(
    ("value", "race"),
    [
        ("WHITE", "White"),
        ("WHITE - RUSSIAN", "White"),
        ("White, non-Hispanic", "White"),
        ("White, Hispanic", "White"),
        ("Caucasian or White", "White"),
        ("BLACK/AFRICAN AMERICAN", "Black"),
        ("BLACK/CAPE VERDEAN", "Black"),
        ("Black or African American", "Black"),
        ("Black, non-Hispanic", "Black"),
        ("African American  or Black", "Black"),
        ("ASIAN", "Asian"),
        ("ASIAN - SOUTH EAST ASIAN", "Asian"),
        ("Asian - Historical Conv", "Asian"),
        ("Asian, non-Hispanic", "Asian"),
        ("Native Hawaiian or Other Pacific Islander", "Other"),
        ("AMERICAN INDIAN/ALASKA NATIVE", "Other"),
        ("American Indian or Alaskan Native", "Other"),
        ("MULTIPLE RACE/ETHNICITY", "Other"),
        ("Multiple", "Other"),
        ("White and Black", "Other"),
        ("OTHER", "Other"),
        ("SOUTH AMERICAN", "Other"),
        ("Other, Hispanic", "Other"),
        ("HISPANIC/LATINO - PUERTO RICAN", "Unknown"),
        ("HISPANIC OR LATINO", "Unknown"),
        ("UNKNOWN", "Unknown"),
        ("UNABLE TO OBTAIN", "Unknown"),
        ("PATIENT DECLINED TO ANSWER", "Unknown"),
        ("Patient Refused", "Unknown"),
        ("Unknown, Unavailable or Unreported", "Unknown"),
        ("Not Recorded", "Unknown"),
    ],
)
def test_race_values_map_to_the_five_categories(value, race):
    assert map_race(value) == race
    assert map_race(f"  {value.lower()} ") == race  # case and outer spaces do not matter


def test_missing_race_is_nan_and_overrides_come_first():
    assert np.isnan(map_race(None)) and np.isnan(map_race(np.nan)) and np.isnan(map_race("  "))
    assert map_race("W", {"w": "White"}) == "White"
    assert map_race("OTHER", {"Other": "Unknown"}) == "Unknown"
    assert map_race("ASIAN", {"w": "White"}) == "Asian"


@pytest.mark.parametrize(
    ("ethnicity", "race", "expected"),
    [
        ("Hispanic/Latino", "White", HISPANIC),
        ("Hispanic or Latino", None, HISPANIC),
        ("Non-Hispanic/Non-Latino", "White", NOT_HISPANIC),
        ("Non-Hispanic or Latino", None, NOT_HISPANIC),
        ("Not Hispanic or Latino", None, NOT_HISPANIC),
        (None, "White, Hispanic", HISPANIC),
        (None, "HISPANIC/LATINO - CUBAN", HISPANIC),
        (None, "White, non-Hispanic", None),
        ("Unknown", "White", None),
        ("Patient Refused", None, None),
    ],
)
def test_hispanic_from_ethnicity_or_race_value(ethnicity, race, expected):
    value = map_ethnicity(ethnicity, race)
    assert value == expected if expected else np.isnan(value)


def test_is_hispanic_reads_negations():
    assert [is_hispanic(v) for v in ("Hispanic/Latino", "Latina", "White, Hispanic", "Hispanic or Latino")] == [True] * 4
    assert [is_hispanic(v) for v in ("Non-Hispanic or Latino", "Not Hispanic", "non hispanic", "White", None)] == [False] * 5


def test_sex_values():
    assert [map_sex(v) for v in ("F", "female", "Male", " M ")] == ["F", "F", "M", "M"]
    assert all(np.isnan(map_sex(v)) for v in ("Unknown", "U", None, np.nan))


def test_patient_race_ignores_unknown_and_excludes_conflicts():
    patients = pd.Series(["a", "a", "b", "b", "c", "d", "e", "e"])
    race = pd.Series(["White", "Unknown", "White", "Asian", "Unknown", np.nan, "Black", "Black"], dtype=object)
    ethnicity = pd.Series([np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, NOT_HISPANIC, HISPANIC], dtype=object)
    table = patient_race(patients, race, ethnicity)
    assert table.loc["a", "race"] == "White" and pd.isna(table.loc["a", "exclusion"])
    assert pd.isna(table.loc["b", "race"]) and table.loc["b", "exclusion"] == CONFLICTING_RACE
    assert table.loc["c", "race"] == "Unknown"
    assert pd.isna(table.loc["d", "race"])
    assert table.loc["e", "race"] == "Black" and table.loc["e", "ethnicity"] == HISPANIC
    assert pd.isna(table.loc["a", "ethnicity"])


# --------------------------------------------------------------------------- generic


@pytest.fixture
def generic_root(tmp_path):
    root = tmp_path / "hospital"
    rows = [
        ("images/p1/a.png", "P1", "S1", "White", "F", 50, None, "PA"),
        ("images/p1/b.png", "P1", "S1", "White", "F", 50, None, "LATERAL"),
        ("images/p2/a.png", "P2", "S2", "Black or African American", "Male", 61, "Not Hispanic", "AP"),
        ("images/p3/a.png", "P3", "S3", "White", "F", 40, "Hispanic or Latino", "PA"),
        ("images/p4/a.png", "P4", "S4", "Declined", "M", 33, None, "PA"),
        ("images/p5/a.png", "P5", "S5", "White", "F", 70, None, "PA"),
        ("images/p5/b.png", "P5", "S6", "ASIAN", "F", 71, None, "PA"),
        ("images/p6/a.png", "P6", "S7", "Pacific Islander", "M", 45, None, "PA"),
        ("images/p7/a.png", "P7", "S8", "Oriental", "M", 45, None, "PA"),  # hospital code via race_map
    ]
    columns = ["path", "patient", "study", "race", "sex", "age", "ethnicity", "view"]
    write_csv(root / "manifest.csv", [dict(zip(columns, row)) for row in rows])
    for seed, row in enumerate(rows):
        write_raster(root / row[0], seed)
    write_raster(root / "images/stray/unlisted.png")
    return root


def generic(root, **options):
    return make_adapter("generic", root, {"manifest": "manifest.csv", "race_map": {"oriental": "Asian"}, **options})


def test_generic_tables(generic_root):
    adapter = generic(generic_root)
    files = adapter.files()
    assert len(files) == 10 and "images/stray/unlisted.png" in files and files == sorted(files)
    studies = adapter.study_table()
    assert len(studies) == 8 and studies[["patient_key", "study_key"]].duplicated().sum() == 0
    assert study(studies, "P1")[["race", "sex", "age"]].tolist() == ["White", "F", "50"]  # as written: ingestion parses
    assert study(studies, "P2")[["race", "sex", "ethnicity"]].tolist() == ["Black", "M", NOT_HISPANIC]
    assert study(studies, "P3")["ethnicity"] == HISPANIC
    assert study(studies, "P4")["race"] == "Unknown"
    assert all(study(studies, "P5", s)["exclusion"] == CONFLICTING_RACE for s in ("S5", "S6"))
    assert study(studies, "P6")["race"] == "Other"
    assert study(studies, "P7")["race"] == "Asian"
    files_table = adapter.file_table()
    assert files_table.index.name == "path"
    assert files_table.loc["images/p1/b.png", ["patient_key", "study_key", "view"]].tolist() == ["P1", "S1", "LATERAL"]


def test_generic_ingest_end_to_end(generic_root):
    adapter = generic(generic_root)
    files = adapter.files()
    result = ingest_shard(adapter, files, "cxr", {"size": 16}, SALT, progress=False)
    check_accounted(result, files)
    assert kept(result, files) == ["images/p1/a.png", "images/p1/b.png", "images/p2/a.png", "images/p7/a.png"]
    assert rows_by_path(result, files).loc["images/p2/a.png", ["race", "sex", "age", "view"]].tolist() == ["Black", "M", 61, "AP"]
    assert reasons(result, files) == {
        "images/p3/a.png": "excluded: Hispanic or Latino ethnicity",
        "images/p4/a.png": "excluded: race Unknown",
        "images/p5/a.png": CONFLICTING_RACE,
        "images/p5/b.png": CONFLICTING_RACE,
        "images/p6/a.png": "excluded: race Other",
        "images/stray/unlisted.png": NO_KEYS,
    }
    counts = summary_counts(files, result)
    assert counts[("files", "found")] == 10 and counts[("kept", "all")] == 4
    assert counts[("quarantine", CONFLICTING_RACE)] == 2 and counts[("race", "Asian")] == 1


def test_generic_errors(generic_root, tmp_path):
    with pytest.raises(DatasetError, match="is not a folder"):
        generic(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="missing table .*other.csv"):
        generic(generic_root, manifest="other.csv").study_table()
    with pytest.raises(DatasetError, match="option 'manifest'"):
        make_adapter("generic", generic_root, {}).files()
    with pytest.raises(DatasetError, match="race_map value"):
        generic(generic_root, race_map={"x": "Martian"})
    (generic_root / "images/p2/a.png").unlink()
    with pytest.raises(DatasetError, match=r"1 file\(s\) listed in .*manifest.csv are missing .*images/p2/a.png"):
        generic(generic_root).files()
    pd.read_csv(generic_root / "manifest.csv").drop(columns="sex").to_csv(generic_root / "manifest.csv", index=False)
    with pytest.raises(DatasetError, match="manifest.csv lacks column.*sex"):
        generic(generic_root).study_table()
    (generic_root / "manifest.csv").write_bytes(b"\x00\xff\xfe garbage \x81\x00" * 20)
    with pytest.raises(DatasetError, match="manifest.csv"):
        generic(generic_root).study_table()


# --------------------------------------------------------------------------- CheXpert


def chexpert_row(path: str, sex: str, age: int, frontal: str, appa: str | None, **labels: float) -> dict:
    row = {"Path": f"CheXpert-v1.0/{path}", "Sex": sex, "Age": age, "Frontal/Lateral": frontal, "AP/PA": appa}
    row.update({finding: labels.get(finding.replace(" ", "_"), np.nan) for finding in FINDINGS})
    return row


@pytest.fixture
def chexpert_root(tmp_path):
    root = tmp_path / "CheXpert-v1.0"
    train = [
        chexpert_row("train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP", Cardiomegaly=1.0, Edema=-1.0),
        chexpert_row("train/patient00001/study1/view2_lateral.jpg", "Female", 68, "Lateral", None, Cardiomegaly=1.0, Edema=-1.0),
        chexpert_row("train/patient00002/study1/view1_frontal.jpg", "Male", 87, "Frontal", "PA", No_Finding=1.0),
        chexpert_row("train/patient00002/study2/view1_frontal.jpg", "Unknown", 88, "Frontal", "AP"),
        chexpert_row("train/patient00003/study1/view1_frontal.jpg", "Male", 41, "Frontal", "AP"),
        chexpert_row("train/patient00004/study1/view1_frontal.jpg", "Female", 30, "Frontal", "AP"),
        chexpert_row("train/patient00005/study1/view1_frontal.jpg", "Male", 55, "Frontal", "AP"),
        chexpert_row("train/patient00006/study1/view1_frontal.jpg", "Male", 23, "Frontal", "PA"),
        chexpert_row("train/patient00007/study1/view1_frontal.jpg", "Female", 77, "Frontal", "AP"),
    ]
    valid = [chexpert_row("valid/patient64541/study1/view1_frontal.jpg", "Male", 73, "Frontal", "AP", Cardiomegaly=0.0)]
    write_csv(root / "train.csv", train)
    write_csv(root / "valid.csv", valid)
    for seed, row in enumerate(train + valid):
        write_raster(root / row["Path"].removeprefix("CheXpert-v1.0/"), seed)
    write_raster(root / "train/patient00099/study1/view1_frontal.jpg")  # not in the tables
    demo = [
        ("patient00001", "Female", 68, "White, non-Hispanic", "Non-Hispanic/Non-Latino"),
        ("patient00002", "Male", 87, "Black or African American", "Non-Hispanic/Non-Latino"),
        ("patient00003", "Male", 41, "White, Hispanic", "Unknown"),
        ("patient00004", "Female", 30, "White", "Hispanic/Latino"),
        ("patient00006", "Male", 23, "Asian - Historical Conv", "Non-Hispanic/Non-Latino"),
        ("patient00007", "Female", 77, "Patient Refused", "Patient Refused"),
        ("patient64541", "Male", 73, "Black, non-Hispanic", "Non-Hispanic/Non-Latino"),
    ]
    columns = ["PATIENT", "GENDER", "AGE_AT_CXR", "PRIMARY_RACE", "ETHNICITY"]
    write_csv(root / "CHEXPERT DEMO.csv", [dict(zip(columns, row)) for row in demo])
    return root


def chexpert(root, **options):
    return make_adapter("chexpert", root, {"demographics": "CHEXPERT DEMO.csv", **options})


def test_chexpert_tables(chexpert_root):
    adapter = chexpert(chexpert_root)
    files = adapter.files()
    assert len(files) == 11 and files[0] == "train/patient00001/study1/view1_frontal.jpg"
    assert "train/patient00099/study1/view1_frontal.jpg" in files
    studies = adapter.study_table()
    assert len(studies) == 9
    first = study(studies, "patient00001", "patient00001/study1")
    assert first[["race", "ethnicity", "sex", "age", "Cardiomegaly", "Edema"]].tolist() == ["White", NOT_HISPANIC, "F", "68", "1.0", "-1.0"]
    assert np.isnan(first["Pneumonia"])
    assert study(studies, "patient00002", "patient00002/study2")["sex"] == "M"  # "Unknown" falls back to GENDER
    assert study(studies, "patient00003")["ethnicity"] == HISPANIC
    assert study(studies, "patient00004")["ethnicity"] == HISPANIC
    assert pd.isna(study(studies, "patient00005")["race"])
    assert study(studies, "patient00006")["race"] == "Asian"
    assert study(studies, "patient00007")["race"] == "Unknown"
    assert study(studies, "patient64541")["race"] == "Black"
    table = adapter.file_table()
    lateral = table.loc["train/patient00001/study1/view2_lateral.jpg"]
    assert lateral["exclusion"] == "excluded: non-frontal view (Lateral)" and lateral["view"] == "LATERAL"
    assert table.loc["valid/patient64541/study1/view1_frontal.jpg", ["official_split", "view"]].tolist() == ["valid", "AP"]
    assert pd.isna(chexpert(chexpert_root, frontal_only=False).file_table()["exclusion"]).all()


def test_chexpert_ingest_end_to_end(chexpert_root):
    adapter = chexpert(chexpert_root)
    files = adapter.files()
    result = ingest_shard(adapter, files, "cxr", {"size": 16}, SALT, progress=False)
    check_accounted(result, files)
    assert kept(result, files) == [
        "train/patient00001/study1/view1_frontal.jpg",
        "train/patient00002/study1/view1_frontal.jpg",
        "train/patient00002/study2/view1_frontal.jpg",
        "train/patient00006/study1/view1_frontal.jpg",
        "valid/patient64541/study1/view1_frontal.jpg",
    ]
    assert result.rows["study_id"].nunique() == 5 and result.rows["patient_id"].nunique() == 4
    assert reasons(result, files) == {
        "train/patient00001/study1/view2_lateral.jpg": "excluded: non-frontal view (Lateral)",
        "train/patient00003/study1/view1_frontal.jpg": "excluded: Hispanic or Latino ethnicity",
        "train/patient00004/study1/view1_frontal.jpg": "excluded: Hispanic or Latino ethnicity",
        "train/patient00005/study1/view1_frontal.jpg": "excluded: no race recorded",
        "train/patient00007/study1/view1_frontal.jpg": "excluded: race Unknown",
        "train/patient00099/study1/view1_frontal.jpg": NO_KEYS,
    }
    counts = summary_counts(files, result)
    assert counts[("quarantine", "excluded: Hispanic or Latino ethnicity")] == 2
    assert (counts[("race", "Black")], counts[("race", "White")], counts[("race", "Asian")]) == (3, 1, 1)


def test_chexpert_errors(chexpert_root, tmp_path):
    with pytest.raises(DatasetError, match="missing table .*CHEXPERT DEMO.xlsx"):
        make_adapter("chexpert", chexpert_root, {}).study_table()
    (chexpert_root / "CHEXPERT DEMO.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    expected = "cannot read table" if importlib.util.find_spec("openpyxl") else "needs the openpyxl package"
    with pytest.raises(DatasetError, match=f"CHEXPERT DEMO.xlsx.*{expected}|{expected}.*CHEXPERT DEMO.xlsx"):
        make_adapter("chexpert", chexpert_root, {}).study_table()
    pd.read_csv(chexpert_root / "CHEXPERT DEMO.csv").drop(columns="PRIMARY_RACE").to_csv(chexpert_root / "CHEXPERT DEMO.csv", index=False)
    with pytest.raises(DatasetError, match="CHEXPERT DEMO.csv lacks column.*PRIMARY_RACE"):
        chexpert(chexpert_root).study_table()
    (chexpert_root / "valid.csv").write_bytes(b"\x00\xff garbage \x81" * 30)
    with pytest.raises(DatasetError, match="valid.csv"):
        chexpert(chexpert_root).files()
    (chexpert_root / "valid.csv").unlink()
    with pytest.raises(DatasetError, match="missing table .*valid.csv"):
        chexpert(chexpert_root).files()
    with pytest.raises(DatasetError, match="missing table .*train.csv"):
        chexpert(tmp_path).files()  # mis-pointed at the parent folder


# --------------------------------------------------------------------------- MIMIC-CXR


MIMIC_IMAGES = [
    # dicom_id, subject_id, study_id, ViewPosition, StudyDate, split
    ("d1", "10000001", "50000001", "PA", "21520101", "train"),
    ("d2", "10000001", "50000001", "LATERAL", "21520101", "train"),
    ("d3", "10000001", "50000002", "AP", "21550601", "train"),
    ("d4", "10000002", "50000003", "AP", "21800101", "validate"),
    ("d5", "10000003", "50000004", "PA", "21300101", "test"),
    ("d6", "10000004", "50000005", "AP", "21300101", "train"),
    ("d7", "11000005", "50000006", None, "21300101", "train"),
    ("d8", "11000006", "50000007", "PA", "21300101", "train"),
]


def mimic_path(dicom_id: str, subject: str, study_id: str, suffix: str) -> str:
    return f"files/p{subject[:2]}/p{subject}/s{study_id}/{dicom_id}{suffix}"


@pytest.fixture
def mimic_roots(tmp_path):
    root, mimic_iv = tmp_path / "mimic-cxr-jpg", tmp_path / "mimiciv"
    metadata = [
        {"dicom_id": d, "subject_id": s, "study_id": st, "PerformedProcedureStepDescription": "CHEST", "ViewPosition": v,
         "Rows": 16, "Columns": 16, "StudyDate": date, "StudyTime": "101010.000"}
        for d, s, st, v, date, _ in MIMIC_IMAGES
    ]
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", metadata, compress=True)
    write_csv(root / "mimic-cxr-2.0.0-split.csv.gz", [{"dicom_id": d, "study_id": st, "subject_id": s, "split": sp} for d, s, st, _, _, sp in MIMIC_IMAGES], compress=True)
    labels = [{"subject_id": s, "study_id": st, **{f: np.nan for f in FINDINGS}} for s, st in {(s, st) for _, s, st, *_ in MIMIC_IMAGES}]
    for row in labels:
        if row["study_id"] == "50000001":
            row.update({"Pleural Effusion": 1.0, "Atelectasis": -1.0, "Pneumothorax": 0.0})
    write_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", labels, compress=True)
    for seed, (d, s, st, *_) in enumerate(MIMIC_IMAGES):
        write_raster(root / mimic_path(d, s, st, ".jpg"), seed)
    write_raster(root / "files/p19/p19999999/s59999999/extra.jpg")
    admissions = [
        {"subject_id": 10000001, "hadm_id": 1, "race": "WHITE"},
        {"subject_id": 10000001, "hadm_id": 2, "race": "UNKNOWN"},
        {"subject_id": 10000002, "hadm_id": 3, "race": "BLACK/AFRICAN AMERICAN"},
        {"subject_id": 10000003, "hadm_id": 4, "race": "WHITE"},
        {"subject_id": 10000003, "hadm_id": 5, "race": "ASIAN - CHINESE"},
        {"subject_id": 10000004, "hadm_id": 6, "race": "HISPANIC/LATINO - PUERTO RICAN"},
        {"subject_id": 11000006, "hadm_id": 7, "race": "PATIENT DECLINED TO ANSWER"},
    ]
    write_csv(mimic_iv / "hosp/admissions.csv.gz", admissions, compress=True)
    patients = [
        {"subject_id": 10000001, "gender": "F", "anchor_age": 60, "anchor_year": 2150, "anchor_year_group": "2008 - 2010", "dod": None},
        {"subject_id": 10000002, "gender": "M", "anchor_age": 45, "anchor_year": 2180, "anchor_year_group": "2014 - 2016", "dod": None},
        {"subject_id": 10000003, "gender": "M", "anchor_age": 30, "anchor_year": 2130, "anchor_year_group": "2014 - 2016", "dod": None},
        {"subject_id": 10000004, "gender": "F", "anchor_age": 30, "anchor_year": 2130, "anchor_year_group": "2014 - 2016", "dod": None},
    ]
    write_csv(mimic_iv / "hosp/patients.csv.gz", patients, compress=True)
    return root, mimic_iv


def mimic(roots, **options):
    root, mimic_iv = roots
    return make_adapter("mimic_cxr", root, {"format": "jpg", "mimic_iv_root": str(mimic_iv), **options})


def test_mimic_tables(mimic_roots):
    adapter = mimic(mimic_roots)
    files = adapter.files()
    assert len(files) == 9 and files[0] == "files/p10/p10000001/s50000001/d1.jpg"
    studies = adapter.study_table()
    assert len(studies) == 7
    first = study(studies, "10000001", "50000001")
    assert first[["race", "sex", "age", "Pleural Effusion", "Atelectasis", "Pneumothorax"]].tolist() == ["White", "F", 62.0, "1.0", "-1.0", "0.0"]
    assert study(studies, "10000001", "50000002")["age"] == 65.0
    assert study(studies, "10000002")[["race", "sex", "age"]].tolist() == ["Black", "M", 45.0]
    assert study(studies, "10000003")["exclusion"] == CONFLICTING_RACE
    assert study(studies, "10000004")[["race", "ethnicity"]].tolist() == ["Unknown", HISPANIC]
    missing = study(studies, "11000005")
    assert pd.isna(missing["race"]) and pd.isna(missing["sex"]) and np.isnan(missing["age"])
    assert study(studies, "11000006")["race"] == "Unknown"
    table = adapter.file_table()
    assert table.loc["files/p10/p10000001/s50000001/d2.jpg", "exclusion"] == "excluded: non-frontal view (LATERAL)"
    assert table.loc["files/p11/p11000005/s50000006/d7.jpg", "exclusion"] == "excluded: non-frontal view (none recorded)"
    assert table.loc["files/p10/p10000002/s50000003/d4.jpg", ["view", "official_split"]].tolist() == ["AP", "validate"]
    assert table["exclusion"].notna().sum() == 2
    assert pd.isna(mimic(mimic_roots, views=["AP", "PA", "LATERAL"]).file_table().loc["files/p10/p10000001/s50000001/d2.jpg", "exclusion"])
    dicom = mimic(mimic_roots, format="dicom")
    assert dicom.file_table().index[0] == "files/p10/p10000001/s50000001/d1.dcm"
    with pytest.raises(DatasetError, match=r"8 file\(s\) listed in mimic-cxr-2.0.0-metadata are missing .*d1.dcm"):
        dicom.files()


def test_mimic_iv_v1_core_ethnicity_is_detected(mimic_roots, tmp_path):
    root, _ = mimic_roots
    v1 = tmp_path / "mimiciv-1.0"
    write_csv(v1 / "core/admissions.csv", [{"subject_id": 10000001, "ethnicity": "BLACK/AFRICAN AMERICAN"}])
    write_csv(v1 / "core/patients.csv", [{"subject_id": 10000001, "gender": "F", "anchor_age": 60, "anchor_year": 2150}])
    studies = mimic((root, v1)).study_table()
    assert study(studies, "10000001", "50000001")[["race", "age"]].tolist() == ["Black", 62.0]


def test_mimic_jpg_ingest_end_to_end(mimic_roots):
    adapter = mimic(mimic_roots)
    files = adapter.files()
    result = ingest_shard(adapter, files, "cxr", {"size": 16}, SALT, progress=False)
    check_accounted(result, files)
    assert kept(result, files) == [
        "files/p10/p10000001/s50000001/d1.jpg",
        "files/p10/p10000001/s50000002/d3.jpg",
        "files/p10/p10000002/s50000003/d4.jpg",
    ]
    rows = rows_by_path(result, files)
    assert rows.loc["files/p10/p10000001/s50000002/d3.jpg", ["race", "sex", "age", "view"]].tolist() == ["White", "F", 65.0, "AP"]
    assert rows.loc["files/p10/p10000001/s50000001/d1.jpg", "Pleural Effusion"] == 1.0
    assert reasons(result, files) == {
        "files/p10/p10000001/s50000001/d2.jpg": "excluded: non-frontal view (LATERAL)",
        "files/p10/p10000003/s50000004/d5.jpg": CONFLICTING_RACE,
        "files/p10/p10000004/s50000005/d6.jpg": "excluded: Hispanic or Latino ethnicity",
        "files/p11/p11000005/s50000006/d7.jpg": "excluded: non-frontal view (none recorded)",
        "files/p11/p11000006/s50000007/d8.jpg": "excluded: race Unknown",
        "files/p19/p19999999/s59999999/extra.jpg": NO_KEYS,
    }
    counts = summary_counts(files, result)
    assert counts[("quarantine", CONFLICTING_RACE)] == 1 and counts[("kept", "all")] == 3
    summary = summarized(files, result)
    assert summary.set_index("value").loc[CONFLICTING_RACE, "patients"] == 1


def test_mimic_errors(mimic_roots, tmp_path):
    root, mimic_iv = mimic_roots
    with pytest.raises(DatasetError, match="format must be"):
        mimic(mimic_roots, format="png")
    with pytest.raises(DatasetError, match="mimic_iv_root"):
        make_adapter("mimic_cxr", root, {}).study_table()
    with pytest.raises(DatasetError, match="missing table .*mimic-cxr-2.0.0-negbio.csv"):
        mimic(mimic_roots, labels="negbio").study_table()
    with pytest.raises(DatasetError, match="missing table .*hosp/admissions"):
        mimic((root, tmp_path)).study_table()
    with pytest.raises(DatasetError, match="missing table .*mimic-cxr-2.0.0-metadata"):
        mimic((tmp_path, mimic_iv)).files()
    (mimic_iv / "hosp/patients.csv.gz").write_bytes(b"\x1f\x8b garbage, not gzip")
    with pytest.raises(DatasetError, match="cannot read table .*patients.csv.gz"):
        mimic(mimic_roots).study_table()
    with gzip.open(root / "mimic-cxr-2.0.0-split.csv.gz", "wt") as handle:
        handle.write("dicom_id,subject_id\nd1,10000001\n")
    with pytest.raises(DatasetError, match="split.csv.gz lacks column.*split"):
        mimic(mimic_roots).files()


# --------------------------------------------------------------------------- Digital Hand Atlas


@pytest.fixture
def hand_root(tmp_path):
    root = tmp_path / "dha"
    for path, patient in [
        ("ASI/F/07/3001.dcm", "3001"),
        ("BLKM12/4001.dcm", "4001"),
        ("CAU/CAUF03/5001.dcm", "5001"),
        ("his/hisM15/6001.dcm", "6001"),
        ("misc/7001.dcm", "7001"),
        ("ASIF07/BLKM07/8001.dcm", "8001"),
    ]:
        write_dicom(root / path, patient, generate_uid(entropy_srcs=[patient]))
    return root


def test_hand_atlas_tables_and_ingest(hand_root):
    adapter = make_adapter("hand_atlas", hand_root, {})
    files = adapter.files()
    assert len(files) == 6
    studies = adapter.study_table().set_index("patient_key")
    assert studies.loc["3001", ["study_key", "race", "sex", "age"]].tolist() == ["3001", "Asian", "F", 7.0]
    assert studies.loc["4001", ["race", "sex", "age"]].tolist() == ["Black", "M", 12.0]
    assert studies.loc["5001", ["race", "sex", "age"]].tolist() == ["White", "F", 3.0]
    assert studies.loc["6001", "ethnicity"] == HISPANIC and studies.loc["6001", "age"] == 15.0
    assert sorted(studies.index) == ["3001", "4001", "5001", "6001"]
    unreadable = "excluded: cannot read race/sex/age from the path"
    table = adapter.file_table()
    assert table.loc["misc/7001.dcm", "exclusion"] == unreadable and table.loc["ASIF07/BLKM07/8001.dcm", "exclusion"] == unreadable
    result = ingest_shard(adapter, files, "xr", {"size": 16}, SALT, progress=False)
    check_accounted(result, files)
    assert kept(result, files) == ["ASI/F/07/3001.dcm", "BLKM12/4001.dcm", "CAU/CAUF03/5001.dcm"]
    assert reasons(result, files) == {
        "his/hisM15/6001.dcm": "excluded: Hispanic or Latino ethnicity",
        "misc/7001.dcm": unreadable,
        "ASIF07/BLKM07/8001.dcm": unreadable,
    }


def test_hand_atlas_duplicate_stem_is_an_error(hand_root):
    write_dicom(hand_root / "BLK/M/10/3001.dcm", "3001b", "1.2.3")
    with pytest.raises(DatasetError, match="'3001' names more than one file"):
        make_adapter("hand_atlas", hand_root, {}).study_table()


# --------------------------------------------------------------------------- EMBED


@pytest.fixture
def embed_root(tmp_path):
    root = tmp_path / "embed"
    clinical = [
        # empi_anon, acc_anon, tissueden, RACE_DESC, ETHNIC_GROUP_DESC, age_at_study, side
        ("E1", "A1", 2, "Caucasian or White", "Non-Hispanic or Latino", 55.2, "L"),
        ("E1", "A1", 3, "Caucasian or White", "Non-Hispanic or Latino", 55.2, "R"),
        ("E1", "A2", 1, "Caucasian or White", "Non-Hispanic or Latino", 57.0, "B"),
        ("E2", "A3", 4, "African American  or Black", "Non-Hispanic or Latino", 61.0, "B"),
        ("E3", "A4", 2, "Caucasian or White", "Non-Hispanic or Latino", 45.0, "B"),
        ("E3", "A5", 2, "Asian", "Non-Hispanic or Latino", 46.0, "B"),
        ("E4", "A6", 5, "Caucasian or White", "Hispanic or Latino", 50.0, "B"),
    ]
    columns = ["empi_anon", "acc_anon", "tissueden", "RACE_DESC", "ETHNIC_GROUP_DESC", "age_at_study", "side"]
    write_csv(root / "tables/EMBED_OpenData_clinical.csv", [dict(zip(columns, row)) for row in clinical])
    prefix = "/mnt/NAS2/mammo/anon_dicom/"
    images = [("E1", "A1", "CC", "L"), ("E1", "A1", "MLO", "R"), ("E1", "A2", "CC", "R"), ("E2", "A3", "MLO", "L"),
              ("E3", "A4", "CC", "L"), ("E4", "A6", "CC", "L"), ("E5", "A7", "CC", "R")]
    metadata = []
    for number, (patient, exam, view, side) in enumerate(images):
        relative = f"cohort_1/{patient}/{exam}/{number}.dcm"
        metadata.append({"empi_anon": patient, "acc_anon": exam, "anon_dicom_path": prefix + relative, "ViewPosition": view, "ImageLateralityFinal": side})
        write_dicom(root / relative, patient, generate_uid(entropy_srcs=[exam]), modality="MG")
    write_csv(root / "tables/EMBED_OpenData_metadata.csv", metadata)
    return root


def test_embed_tables_and_ingest(embed_root):
    adapter = make_adapter("embed", embed_root, {})
    files = adapter.files()
    assert files == sorted(files) and len(files) == 7 and not any(f.startswith("tables/") for f in files)
    studies = adapter.study_table()
    assert len(studies) == 6
    assert study(studies, "E1", "A1")[["race", "ethnicity", "age", "breast_density"]].tolist() == ["White", NOT_HISPANIC, "55.2", "C"]
    assert study(studies, "E1", "A2")["breast_density"] == "A"
    assert study(studies, "E2")[["race", "breast_density"]].tolist() == ["Black", "D"]
    assert study(studies, "E3", "A5")["exclusion"] == CONFLICTING_RACE
    assert pd.isna(study(studies, "E4")["breast_density"]) and study(studies, "E4")["ethnicity"] == HISPANIC
    table = adapter.file_table()
    assert table.loc["cohort_1/E1/A1/1.dcm", ["view", "laterality", "study_key"]].tolist() == ["MLO", "R", "A1"]
    result = ingest_shard(adapter, files, "mammo", {"size": 16}, SALT, progress=False)
    check_accounted(result, files)
    assert len(result.rows) == 4
    assert rows_by_path(result, files).loc["cohort_1/E1/A1/1.dcm", ["breast_density", "laterality", "view"]].tolist() == ["C", "R", "MLO"]
    assert reasons(result, files) == {
        "cohort_1/E3/A4/4.dcm": CONFLICTING_RACE,
        "cohort_1/E4/A6/5.dcm": "excluded: Hispanic or Latino ethnicity",
        "cohort_1/E5/A7/6.dcm": NO_RECORD,
    }


def test_embed_errors(embed_root):
    with pytest.raises(DatasetError, match="does not start with the path_prefix"):
        make_adapter("embed", embed_root, {"path_prefix": "/elsewhere/"}).files()
    with pytest.raises(DatasetError, match="missing table .*clin.csv"):
        make_adapter("embed", embed_root, {"clinical": "clin.csv"}).study_table()
    clinical = embed_root / "tables/EMBED_OpenData_clinical.csv"
    pd.read_csv(clinical).drop(columns="tissueden").to_csv(clinical, index=False)
    with pytest.raises(DatasetError, match="EMBED_OpenData_clinical.csv lacks column.*tissueden"):
        make_adapter("embed", embed_root, {}).study_table()


# --------------------------------------------------------------------------- RSPECT


@pytest.fixture
def rspect_root(tmp_path):
    root = tmp_path / "rspect"
    images = []
    for study_uid, n in (("1.2.840.1", 2), ("1.2.840.2", 1), ("1.2.840.3", 1), ("1.2.840.4", 1)):
        for z in range(n):
            series, sop = f"{study_uid}.9", f"{study_uid}.9.{z}"
            images.append({"StudyInstanceUID": study_uid, "SeriesInstanceUID": series, "SOPInstanceUID": sop, "pe_present_on_image": 0})
            write_dicom(root / f"train/{study_uid}/{series}/{sop}.dcm", "anon", study_uid, modality="CT", z=float(z))
    write_csv(root / "train.csv", images)
    demographics = [
        {"StudyInstanceUID": "1.2.840.1", "race": "White", "sex": "F", "age": 70, "patient": "R1"},
        {"StudyInstanceUID": "1.2.840.2", "race": "Black", "sex": "M", "age": 50, "patient": "R2"},
        {"StudyInstanceUID": "1.2.840.3", "race": "Asian", "sex": "M", "age": 51, "patient": "R2"},
    ]
    write_csv(root / "race.csv", demographics)
    return root


def test_rspect_tables_and_ingest(rspect_root):
    adapter = make_adapter("rspect", rspect_root, {"demographics": "race.csv"})
    files = adapter.files()
    assert len(files) == 5 and files[0] == "train/1.2.840.1/1.2.840.1.9/1.2.840.1.9.0.dcm"
    studies = adapter.study_table()
    assert study(studies, "R1")[["study_key", "race", "sex", "age"]].tolist() == ["1.2.840.1", "White", "F", "70"]
    assert study(studies, "R2", "1.2.840.2")["exclusion"] == CONFLICTING_RACE
    table = adapter.file_table()
    assert table.loc["train/1.2.840.4/1.2.840.4.9/1.2.840.4.9.0.dcm", "patient_key"] == "1.2.840.4"
    result = ingest_shard(adapter, files, "ct", {"size": 16, "window": {"center": -600, "width": 1500}}, SALT, progress=False)
    check_accounted(result, files)
    assert sorted(result.rows["slice_index"]) == [0, 1] and set(result.rows["race"]) == {"White"}
    assert reasons(result, files)["train/1.2.840.4/1.2.840.4.9/1.2.840.4.9.0.dcm"] == NO_RECORD
    assert reasons(result, files)["train/1.2.840.3/1.2.840.3.9/1.2.840.3.9.0.dcm"] == CONFLICTING_RACE
    with pytest.raises(DatasetError, match="option 'demographics'"):
        make_adapter("rspect", rspect_root, {}).study_table()
    (rspect_root / "train.csv").write_text("StudyInstanceUID,SOPInstanceUID\n1,2\n")
    with pytest.raises(DatasetError, match="train.csv lacks column.*SeriesInstanceUID"):
        adapter.files()


# --------------------------------------------------------------------------- NLST


@pytest.fixture
def nlst_root(tmp_path):
    root = tmp_path / "nlst"
    for pid, n in (("100001", 2), ("100002", 1), ("100003", 1), ("100004", 1), ("100005", 1), ("100099", 1)):
        for z in range(n):
            write_dicom(root / f"NLST/{pid}/study/series/{z}.dcm", pid, f"1.3.{pid}", modality="CT", z=float(z))
    participants = [
        {"pid": 100001, "race": 1, "ethnic": 2, "gender": 1, "age": 61},
        {"pid": 100002, "race": 2, "ethnic": 2, "gender": 2, "age": 58},
        {"pid": 100003, "race": 1, "ethnic": 1, "gender": 2, "age": 66},
        {"pid": 100004, "race": 6, "ethnic": 99, "gender": 1, "age": 70},
        {"pid": 100005, "race": 95, "ethnic": 7, "gender": 1, "age": 55},
    ]
    write_csv(root / "nlst_780_prsn_idc_20210527.csv", participants)
    return root


def test_nlst_tables_and_ingest(nlst_root):
    adapter = make_adapter("nlst", nlst_root, {"participants": "nlst_780_prsn_idc_20210527.csv"})
    files = adapter.files()
    assert len(files) == 7 and all(f.startswith("NLST/") for f in files)
    studies = adapter.study_table().set_index("patient_key")
    assert studies.loc["100001", ["study_key", "race", "ethnicity", "sex", "age"]].tolist() == ["100001", "White", NOT_HISPANIC, "M", "61"]
    assert studies.loc["100002", ["race", "sex"]].tolist() == ["Black", "F"]
    assert studies.loc["100004", "race"] == "Other" and pd.isna(studies.loc["100004", "ethnicity"])
    assert pd.isna(studies.loc["100005", "race"])
    window = {"center": -600, "width": 1500}
    result = ingest_shard(adapter, files, "ct", {"size": 16, "window": window}, SALT, progress=False)
    check_accounted(result, files)
    assert len(result.rows) == 3 and sorted(result.rows["slice_index"]) == [0, 0, 1]
    assert reasons(result, files) == {
        "NLST/100003/study/series/0.dcm": "excluded: Hispanic or Latino ethnicity",
        "NLST/100004/study/series/0.dcm": "excluded: race Other",
        "NLST/100005/study/series/0.dcm": "excluded: no race recorded",
        "NLST/100099/study/series/0.dcm": NO_RECORD,
    }
    with pytest.raises(DatasetError, match="option 'participants'"):
        make_adapter("nlst", nlst_root, {}).files()
    (nlst_root / "nlst_780_prsn_idc_20210527.csv").write_text("pid,race\n1,1\n")
    with pytest.raises(DatasetError, match="lacks column.*ethnic"):
        adapter.study_table()


# --------------------------------------------------------------------------- shared error rules


@pytest.mark.parametrize("name", ["generic", "chexpert", "mimic_cxr", "hand_atlas", "embed", "rspect", "nlst"])
def test_every_adapter_names_a_mis_pointed_root(name, tmp_path):
    with pytest.raises(DatasetError, match=f"{name}: dataset root .*nowhere is not a folder"):
        make_adapter(name, tmp_path / "nowhere", {})


def test_config_schema_accepts_each_adapter_and_rejects_unknown_options():
    import jsonschema
    import yaml

    from conftest import CONFIG_SCHEMA

    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    # One validator for the 22 checks: jsonschema.validate checks the (large) schema itself
    # and rebuilds its validator on every call, 2 CPU-s each.
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    validate = validator(schema).validate
    options = {
        "generic": {"root": "/d", "manifest": "m.csv", "race_map": {"W": "White"}},
        "chexpert": {"root": "/d", "demographics": "demo.csv"},
        "mimic_cxr": {"root": "/d", "mimic_iv_root": "/iv", "format": "jpg", "views": ["PA"]},
        "hand_atlas": {"root": "/d"},
        "embed": {"root": "/d", "path_prefix": "/mnt/"},
        "rspect": {"root": "/d", "demographics": "race.csv"},
        "nlst": {"root": "/d", "participants": "p.csv", "file_list": "f.txt"},
    }
    for name, option in options.items():
        config = {"datasets": {"d": {"adapter": name, "modality": "cxr", "options": option}}}
        validate(config)
        with pytest.raises(jsonschema.ValidationError):
            validate({"datasets": {"d": {"adapter": name, "modality": "cxr", "options": {**option, "bogus": 1}}}})
        with pytest.raises(jsonschema.ValidationError):
            validate({"datasets": {"d": {"adapter": name, "modality": "cxr", "options": {}}}})
    with pytest.raises(jsonschema.ValidationError):
        validate({"datasets": {"d": {"adapter": "generic", "modality": "cxr", "options": {"root": "/d", "manifest": "m", "race_map": {"W": "Martian"}}}}})


def test_chexpert_reads_the_official_xlsx_like_its_csv_export(chexpert_root):
    # The demographics ship as "CHEXPERT DEMO.xlsx"; openpyxl is a dependency, so read it.
    pd.read_csv(chexpert_root / "CHEXPERT DEMO.csv", dtype=str).to_excel(chexpert_root / "CHEXPERT DEMO.xlsx", index=False)
    from_csv = make_adapter("chexpert", chexpert_root, {"demographics": "CHEXPERT DEMO.csv"}).study_table()
    from_xlsx = make_adapter("chexpert", chexpert_root, {}).study_table()
    assert len(from_xlsx) > 0
    pd.testing.assert_frame_equal(from_xlsx.reset_index(drop=True), from_csv.reset_index(drop=True))


# --------------------------------------------------------------------------- units, privacy of reasons, values


def test_units_say_what_the_keys_identify(nlst_root, rspect_root, generic_root):
    assert make_adapter("nlst", nlst_root, {"participants": "nlst_780_prsn_idc_20210527.csv"}).units() == {
        "patient": "patient", "study": "patient"}  # the study key is the participant
    assert make_adapter("rspect", rspect_root, {"demographics": "race.csv"}).units() == {"patient": "patient", "study": "study"}
    pd.read_csv(rspect_root / "race.csv").drop(columns="patient").to_csv(rspect_root / "no_patient.csv", index=False)
    assert make_adapter("rspect", rspect_root, {"demographics": "no_patient.csv"}).units() == {"patient": "study", "study": "study"}
    table = pd.read_csv(rspect_root / "race.csv")
    table.loc[0, "patient"] = np.nan  # one study without its patient: patients are not all patients
    table.to_csv(rspect_root / "partial.csv", index=False)
    assert make_adapter("rspect", rspect_root, {"demographics": "partial.csv"}).units()["patient"] == "study"
    assert generic(generic_root).units() == {"patient": "patient", "study": "study"}


def test_an_unknown_view_value_stays_in_the_private_detail(mimic_roots):
    root, _ = mimic_roots
    metadata = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", dtype=str)
    metadata.loc[metadata["dicom_id"] == "d2", "ViewPosition"] = "MRN84412907"
    metadata.to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False, compression="gzip")
    adapter = mimic(mimic_roots)
    files = adapter.files()
    result = ingest_shard(adapter, files, "cxr", {"size": 16}, SALT, progress=False)
    path = "files/p10/p10000001/s50000001/d2.jpg"
    assert reasons(result, files)[path] == "excluded: non-frontal view (unrecognised value)"
    detail = result.quarantine.set_index("file_id").loc[file_id(path, SALT), "detail"]
    assert detail == "view 'MRN84412907'"
    assert not result.quarantine["reason"].str.contains("MRN").any()


def test_ages_bmis_and_labels_are_passed_as_written_and_counted_when_invalid(generic_root):
    table = pd.read_csv(generic_root / "manifest.csv", dtype=str)
    table["bmi"] = None
    table["Edema"] = None
    bad = {"images/p1/a.png": ("45Y", "24", "1.0"), "images/p2/a.png": ("n/a", "n/a", "x"),
           "images/p7/a.png": ("150", "3", "-1.0")}  # fmt: skip
    for path, (age, bmi, edema) in bad.items():
        table.loc[table["path"] == path, ["age", "bmi", "Edema"]] = [age, bmi, edema]
    table.loc[table["path"] == "images/p1/b.png", "age"] = "45Y"  # the same study, as written twice
    table.to_csv(generic_root / "manifest.csv", index=False)
    adapter = generic(generic_root)
    assert study(adapter.study_table(), "P2")[["age", "bmi"]].tolist() == ["n/a", "n/a"]  # not read as missing
    files = adapter.files()
    ranges = {"age": (0, 120), "bmi": (5, 100)}
    result = ingest_shard(adapter, files, "cxr", {"size": 16}, SALT, progress=False, value_ranges=ranges)
    rows = rows_by_path(result, files)
    assert rows.loc["images/p1/a.png", "invalid_values"] == "age"
    assert rows.loc["images/p2/a.png", "invalid_values"] == "age;bmi;Edema"
    assert rows.loc["images/p7/a.png", "invalid_values"] == "age;bmi"
    assert rows.loc[list(bad), "age"].isna().all() and rows.loc[["images/p2/a.png", "images/p7/a.png"], "bmi"].isna().all()
    assert rows.loc["images/p1/a.png", "bmi"] == 24.0 and rows.loc["images/p7/a.png", "Edema"] == -1.0
    summary = summarized(files, result).set_index(["group", "value"])
    assert summary.loc[("invalid value", "age"), ["patients", "count"]].tolist() == [3, 4]
    assert summary.loc[("invalid value", "bmi"), ["patients", "count"]].tolist() == [2, 2]
    assert summary.loc[("invalid value", "Edema"), ["patients", "count"]].tolist() == [1, 1]
    assert ("invalid value", "Cardiomegaly") not in summary.index


def test_read_table_keeps_as_written_columns_as_text(tmp_path):
    from readrace.ingest.adapters import read_table

    path = tmp_path / "t.csv"
    path.write_text("id,race,age\n1,NA,n/a\n2,White,\n3,n/a,NA\n")
    table = read_table(path, ("id",), as_written=("age", "absent"), dtype={"id": str})
    assert table["age"].tolist()[0::2] == ["n/a", "NA"] and pd.isna(table["age"][1])
    assert table["race"].isna().tolist() == [True, False, True]  # other columns read as by default
    assert table["id"].tolist() == ["1", "2", "3"]


def test_mimic_age_from_unparseable_parts_is_left_as_written():
    from readrace.ingest.adapters.mimic import age_at_study

    ages = age_at_study(pd.Series([60, "sixty", 60, np.nan]), pd.Series([2150, 2150, 2150, 2150]),
                        pd.Series(["21520101", "21520101", "X1520101", "21520101"]))  # fmt: skip
    assert ages[0] == 62.0 and ages[1] == "sixty" and ages[2] == "X152" and np.isnan(ages[3])


def test_mimic_bmi_comes_from_omr_nearest_the_study_within_the_window(mimic_roots):
    _, mimic_iv = mimic_roots
    adapter = mimic(mimic_roots)
    no_omr = study(adapter.study_table(), "10000001", "50000001")
    assert np.isnan(no_omr["bmi"]) and no_omr["bmi_source"] == "omr unmatched: no omr table"  # no omr, no BMI
    write_csv(mimic_iv / "hosp/omr.csv.gz", [
        {"subject_id": 10000001, "chartdate": "2151-12-20", "seq_num": 1, "result_name": "BMI (kg/m2)", "result_value": "29.5"},
        {"subject_id": 10000001, "chartdate": "2155-06-10", "seq_num": 1, "result_name": "Height (Inches)", "result_value": "64"},
        {"subject_id": 10000001, "chartdate": "2155-06-10", "seq_num": 1, "result_name": "Weight (Lbs)", "result_value": "150"},
        {"subject_id": 10000002, "chartdate": "2170-01-01", "seq_num": 1, "result_name": "BMI (kg/m2)", "result_value": "22"},
    ], compress=True)
    studies = mimic(mimic_roots, bmi_window_days=30).study_table()
    assert study(studies, "10000001", "50000001")["bmi"] == pytest.approx(29.5)
    assert study(studies, "10000001", "50000002")["bmi"] == pytest.approx(703 * 150 / 64**2)
    assert np.isnan(study(studies, "10000002")["bmi"])  # ten years from its study
    # How each study was matched goes into the manifest (bmi_source) for the coverage table.
    assert study(studies, "10000001", "50000001")["bmi_source"] == "omr matched: recorded BMI"
    assert study(studies, "10000001", "50000002")["bmi_source"] == "omr matched: from height and weight"
    assert study(studies, "10000002")["bmi_source"] == "omr unmatched: no measurement within 30 days"
