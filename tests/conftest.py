"""Shared fixtures: paths of the repository and its schemas; small DICOM files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
CONFIG_SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MANIFEST_SCHEMA = REPO / "workflow" / "schemas" / "manifest.schema.yaml"
PREDICTIONS_SCHEMA = REPO / "workflow" / "schemas" / "predictions.schema.yaml"


@pytest.fixture
def default_config() -> dict:
    with open(REPO / "config.yaml") as handle:
        return yaml.safe_load(handle)


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None, cwd: Path | None = None,
                  timeout: int = 900) -> subprocess.CompletedProcess:
    """The repository's Snakefile run in ``workdir`` (its results, logs and .snakemake/ go
    there, never into the checkout), under ``configfile`` (default ``workdir/config.yaml``)."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(configfile or workdir / "config.yaml"), *args,
    ]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def make_dataset(
    pixels: np.ndarray,
    *,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    sop_class: str = DigitalXRayImageStorageForPresentation,
    name: str = "image",
    **attributes: object,
) -> Dataset:
    """A minimal image dataset; UIDs derive from ``name`` so every run writes the same bytes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[name])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series"])
    ds.PatientID = "P0001"
    ds.Modality = modality
    pixels = np.asarray(pixels)
    ds.set_pixel_data(
        pixels, photometric, bits_stored or pixels.itemsize * 8, generate_instance_uid=False
    )
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
