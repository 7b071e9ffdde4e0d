"""Ingestion of a hospital export named by MRN and accession number, through Snakemake.

The dataset (adapter ``generic``, a CSV manifest) is laid out the way hospital exports are:
folders by MRN and accession number, files named by MRN, the DICOM PatientID the MRN and the
AccessionNumber the accession; one file is broken (PIL quotes its path in its error), one is
not in the manifest, one's Modality holds an MRN. A second dataset lists a file that does
not exist, so its listing job stops with an error naming it. None of these strings may
reach any file under results/ or logs/; private/ must map every pseudonym back to its source.
The ages and BMIs include unparseable and out-of-range values, which the summary counts.

One ingestion-only Snakemake run (no training, a few seconds of work) feeds every test.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

from conftest import run_snakemake
from readrace.data.pseudonym import pseudonymize

pytestmark = pytest.mark.workflow

SALT = "salt-for-the-privacy-test"
COLUMNS = ("path", "patient", "study", "race", "sex", "age", "bmi")


def mrn(n: int) -> str:
    return f"MRN844129{n:02d}"


def accession(n: int) -> str:
    return f"ACC2023{n:04d}"


def image_path(patient: int, study: int, name: str = "1.dcm") -> str:
    return f"{mrn(patient)}/{accession(study)}/{mrn(patient)}_{name}"


# (patient, study, race, sex, age, bmi, kind): as the hospital's manifest writes them.
ROWS = [
    (7, 1, "White", "F", "45Y", "24.5", "image"),
    (7, 1, "White", "F", "45Y", "24.5", "image"),  # a second image of the same study
    (8, 2, "Black", "M", "61", "n/a", "image"),
    (9, 3, "Asian", "F", "abc", "3", "image"),  # BMI out of range
    (10, 4, "White", "M", "150", "30", "image"),  # age out of range
    (10, 5, "White", "M", "52", "abc", "image"),
    (11, 6, "Black", "F", "70", "22", "image"),
    (11, 9, "Black", "F", "n/a", "22", "image"),
    (12, 7, "White", "F", "33", "20", "broken"),
    (13, 8, "Black", "M", "40", "25", "wrong-modality"),
    (14, 10, "xyz", "M", "n/a", "abc", "image"),  # race Other: excluded, so not counted below
]
#: What the summary must count: the kept images whose value is invalid, and their patients.
INVALID = {"age": (5, 4), "bmi": (3, 3)}
#: The manifest's values for the kept images (the first eight rows).
AGES = [np.nan, np.nan, 61.0, np.nan, np.nan, 52.0, 70.0, np.nan]
BMIS = [24.5, 24.5, np.nan, np.nan, 30.0, np.nan, 22.0, 22.0]
UNLISTED = image_path(7, 1, "extra.dcm")
MISSING = image_path(99, 99)


def write_dicom(path: Path, patient: int, study: int, modality: str = "DX") -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path.name)])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[accession(study)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[accession(study), "1"])
    ds.PatientID = mrn(patient)
    ds.AccessionNumber = accession(study)
    ds.PatientName = f"DOE^{mrn(patient)}"
    ds.Modality = modality
    pixels = (np.add.outer(np.arange(16), np.arange(16)) * 60 + 7 * patient).astype(np.uint16)
    ds.set_pixel_data(pixels, "MONOCHROME2", 12, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_export(root: Path) -> list[dict]:
    rows = []
    for number, (patient, study, race, sex, age, bmi, kind) in enumerate(ROWS):
        name = "1.png" if kind == "broken" else f"{number}.dcm"
        path = image_path(patient, study, name)
        if kind == "broken":
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(b"\x89PNG but then nothing")  # PIL names the file in its error
        else:
            write_dicom(root / path, patient, study, modality=mrn(patient) if kind == "wrong-modality" else "DX")
        rows.append(dict(zip(COLUMNS, (path, mrn(patient), accession(study), race, sex, age, bmi))))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    write_dicom(root / UNLISTED, 7, 1)  # on disk, not in the manifest
    return rows


def secrets() -> set[str]:
    """Every string that identifies a patient or a file of the export."""
    values = {mrn(n) for n in range(7, 15)} | {mrn(99)} | {accession(n) for n in range(1, 11)} | {accession(99)}
    values |= {image_path(p, s, "") for p, s, *_ in ROWS} | {UNLISTED, MISSING, f"DOE^{mrn(7)}"}
    return values


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("privacy")
    export, broken_list = base / "hospital-export", base / "listing-with-a-missing-file"
    export.mkdir()
    write_export(export)
    broken_list.mkdir()
    pd.DataFrame([dict(zip(COLUMNS, (MISSING, mrn(99), accession(99), "White", "F", "50", "25")))]).to_csv(
        broken_list / "manifest.csv", index=False
    )
    workdir = base / "workflow"
    workdir.mkdir()
    config = {
        "pseudonym_salt": SALT,
        "datasets": {
            name: {"adapter": "generic", "modality": "cxr", "preprocess": {"size": 16},
                   "options": {"root": str(root), "manifest": "manifest.csv"}}
            for name, root in (("hospital", export), ("missing", broken_list))
        },  # fmt: skip
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/config.yaml"] + [
        f"results/{name}/{output}"
        for name in ("hospital", "missing")
        for output in ("manifest.parquet", "quarantine.csv", "summary.csv", "dataset.json")
    ]
    result = run_snakemake(workdir, "--cores", "1", "--keep-going", *targets, timeout=600)
    # The listing of "missing" must fail; everything of "hospital" must be made.
    assert result.returncode != 0, result.stderr[-3000:]
    assert (workdir / "results/hospital/dataset.json").is_file(), result.stderr[-3000:]
    return workdir


def export_root(workdir: Path) -> Path:
    return workdir.parent / "hospital-export"


def readable_texts(path: Path) -> list[bytes]:
    """The file's raw bytes, and for Parquet (compressed) its decoded table and metadata."""
    data = path.read_bytes()
    texts = [data]
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
        texts.append(table.to_csv(index=False).encode())
        import pyarrow.parquet as pq

        texts.append(str(pq.read_metadata(path).metadata).encode())
    return texts


def written_files(workdir: Path) -> list[Path]:
    return sorted(p for folder in ("results", "logs") for p in (workdir / folder).rglob("*") if p.is_file())


def test_no_identifier_reaches_results_or_logs(run):
    written = written_files(run)
    names = {p.relative_to(run).as_posix() for p in written}
    assert {"results/hospital/manifest.parquet", "results/hospital/quarantine.csv", "results/hospital/summary.csv",
            "results/hospital/dataset.json", "results/hospital/cache/images.npy", "results/hospital/ingest/files.csv",
            "logs/list_files/missing.log", "logs/ingest_shard/hospital/0.log"} <= names  # fmt: skip
    found = []
    pattern = re.compile(b"|".join(re.escape(s.encode()) for s in sorted(secrets(), key=len, reverse=True)))
    for path in written:
        for text in readable_texts(path):
            found += [f"{match.group().decode()!r} in {path.relative_to(run)}" for match in pattern.finditer(text)]
    assert not found, "\n".join(found[:20])
    # The search is not blind: the private map holds the same strings.
    private = b"".join(p.read_bytes() for p in (run / "private").rglob("*.csv"))
    assert pattern.search(private) and pattern.search((run / "private/logs/list_files/missing.log").read_bytes())


def test_a_listing_that_names_a_missing_file_fails_with_a_public_pointer(run):
    public = (run / "logs/list_files/missing.log").read_text()
    private = (run / "private/logs/list_files/missing.log").read_text()
    assert "job failed: DatasetError" in public and "private/logs/list_files/missing.log" in public
    assert f"listed in {run.parent / 'listing-with-a-missing-file' / 'manifest.csv'} are missing" in private
    assert MISSING in private and "Traceback" in private


def test_private_map_resolves_every_pseudonym_to_its_source(run):
    root = export_root(run)
    listing = pd.read_csv(run / "private/hospital/files.csv", dtype=str, keep_default_na=False)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"manifest.csv"}
    assert set(listing["path"]) == on_disk and len(listing) == len(ROWS) + 1
    assert listing["file_id"].tolist() == [pseudonymize(p, SALT, "file") for p in listing["path"]]
    public_listing = pd.read_csv(run / "results/hospital/ingest/files.csv", dtype=str)
    assert list(public_listing.columns) == ["file_id", "shard"] and set(public_listing["file_id"]) == set(listing["file_id"])

    manifest = pd.read_parquet(run / "results/hospital/manifest.parquet")
    sources = pd.read_csv(run / "private/hospital/sources.csv", dtype={"path": str, "file_id": str})
    assert list(sources.columns) == ["image_id", "file_id", "frame", "path"]
    assert sources["image_id"].tolist() == manifest["image_id"].tolist()  # in manifest (cache) order
    for row in sources.itertuples():
        ds = pydicom.dcmread(root / row.path, stop_before_pixels=True)
        assert row.image_id == pseudonymize(f"{ds.SOPInstanceUID}#{row.frame}", SALT, "image")
        assert row.file_id == pseudonymize(row.path, SALT, "file")
        patient = manifest.set_index("image_id").loc[row.image_id, "patient_id"]
        assert patient == pseudonymize(str(ds.PatientID), SALT, "patient")

    public = pd.read_csv(run / "results/hospital/quarantine.csv", dtype=str, keep_default_na=False)
    private = pd.read_csv(run / "private/hospital/quarantine.csv", dtype=str, keep_default_na=False)
    assert list(public.columns) == ["file_id", "reason", "patient_id"]
    assert list(private.columns) == ["file_id", "path", "reason", "detail"]
    assert public.set_index("file_id")["reason"].to_dict() == private.set_index("file_id")["reason"].to_dict()
    assert private["file_id"].tolist() == [pseudonymize(p, SALT, "file") for p in private["path"]]
    assert set(sources["file_id"]) | set(private["file_id"]) == set(listing["file_id"])
    assert not set(sources["file_id"]) & set(private["file_id"])
    by_path = private.set_index("path")
    broken = image_path(12, 7, "1.png")
    assert by_path.loc[broken, "reason"] == "unreadable image file"
    assert str(root / broken) in by_path.loc[broken, "detail"]  # PIL's message, privately
    wrong = image_path(13, 8, "9.dcm")
    assert by_path.loc[wrong, "reason"] == (
        "wrong modality: DICOM Modality (not a defined term) is not one of CR/DX expected in a cxr dataset"
    )
    assert by_path.loc[wrong, "detail"] == f"Modality '{mrn(13)}'"
    assert by_path.loc[UNLISTED, "reason"].startswith("no demographics record")
    assert by_path.loc[image_path(14, 10, "10.dcm"), "reason"] == "excluded: race Other"
    assert len(private) == 4
    # The quarantined files of known patients name them by pseudonym (for the summary).
    assert public.set_index("file_id").loc[pseudonymize(UNLISTED, SALT, "file"), "patient_id"] == (
        pseudonymize(mrn(7), SALT, "patient")
    )


def test_invalid_ages_and_bmis_are_counted_and_left_missing(run):
    summary = pd.read_csv(run / "results/hospital/summary.csv").set_index(["group", "value"])
    for column, (images, patients) in INVALID.items():
        assert summary.loc[("invalid value", column), ["count", "patients"]].tolist() == [images, patients], column
    assert len(summary.loc["invalid value"]) == 2
    manifest = pd.read_parquet(run / "results/hospital/manifest.parquet")
    sources = pd.read_csv(run / "private/hospital/sources.csv", dtype={"path": str})
    values = manifest.assign(path=manifest["image_id"].map(sources.set_index("image_id")["path"])).set_index("path")
    paths = [image_path(patient, study, f"{number}.dcm") for number, (patient, study, *_) in enumerate(ROWS[:8])]
    np.testing.assert_array_equal(values.loc[paths, "age"].to_numpy(), AGES)  # NaN where invalid
    np.testing.assert_array_equal(values.loc[paths, "bmi"].to_numpy(), BMIS)
    assert summary.loc[("kept", "all"), "count"] == 8


def test_dataset_descriptor(run):
    descriptor = json.loads((run / "results/hospital/dataset.json").read_text())
    manifest = pd.read_parquet(run / "results/hospital/manifest.parquet")
    cache = np.load(run / "results/hospital/cache/images.npy")
    assert descriptor == {
        "format": 1, "modality": "cxr", "n_images": len(manifest), "n_patients": manifest["patient_id"].nunique(),
        "cache": {"file": "cache/images.npy", "shape": [len(manifest), 16, 16], "dtype": "float16",
                  "sha256": hashlib.sha256(cache.tobytes()).hexdigest()},
        "units": {"patient": "patient", "study": "study"},
    }  # fmt: skip
    assert (descriptor["n_images"], descriptor["n_patients"]) == (8, 5)
    buffer = io.BytesIO()
    np.save(buffer, cache)
    assert buffer.getvalue() == (run / "results/hospital/cache/images.npy").read_bytes()
