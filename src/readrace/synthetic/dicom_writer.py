"""DICOM Part 10 files for the synthetic cohort (pydicom 3), including the broken ones.

Headers carry realistic PHI-like values (name, MRN, birth date, accession number,
institution, referring physician) on purpose: ingestion must drop them, and tests elsewhere
grep results for them. Nothing here reads the clock, so the same inputs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

from readrace.synthetic.sites import SiteProfile

#: UID entropy prefix: every UID of the generator is a hash of this and generator indices.
UID_NAMESPACE = "readrace-synthetic"

_BODY_PART = {"cxr": "CHEST", "ct": "CHEST", "mammo": "BREAST"}


def make_uid(*parts: object) -> str:
    """A deterministic UID from generator coordinates (pydicom's hash-based generator).

    pydicom concatenates its entropy sources with no separator, so (1, 11) and (11, 1) would
    give the same UID: the coordinates are joined with a separator first.
    """
    return generate_uid(entropy_srcs=["\x1f".join([UID_NAMESPACE, *(str(p) for p in parts)])])


def _age_string(age: int) -> str:
    return f"{int(age):03d}Y"


def _patient_study_header(ds: Dataset, profile: SiteProfile, patient: Mapping[str, Any],
                          study: Mapping[str, Any]) -> None:
    """Patient, study and equipment modules shared by every object of a study."""
    ds.PatientName = patient["PatientName"]
    ds.PatientID = patient["PatientID"]
    ds.IssuerOfPatientID = profile.institution
    ds.PatientBirthDate = patient["PatientBirthDate"]
    ds.PatientSex = patient["sex"]
    ds.PatientAge = _age_string(study["age"])
    ds.StudyInstanceUID = study["StudyInstanceUID"]
    ds.StudyDate = study["StudyDate"]
    ds.StudyTime = study["StudyTime"]
    ds.StudyID = str(study["study_index"])
    ds.AccessionNumber = study["AccessionNumber"]
    ds.ReferringPhysicianName = study["ReferringPhysicianName"]
    ds.StudyDescription = {"cxr": "XR CHEST", "ct": "CT CHEST WO CONTRAST",
                           "mammo": "MG SCREENING BILATERAL"}[profile.modality]
    ds.InstitutionName = profile.institution
    ds.Manufacturer = profile.manufacturer
    ds.ManufacturerModelName = profile.model_name


def image_dataset(profile: SiteProfile, patient: Mapping[str, Any], study: Mapping[str, Any], *,
                  series_uid: str, sop_uid: str, series_number: int, instance_number: int,
                  view: str = "", laterality: str = "",
                  ct_position: tuple[float, float, float] | None = None,
                  frame_of_reference_uid: str = "") -> Dataset:
    """The header of one image of ``profile`` (everything but the pixel data)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = profile.sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    _patient_study_header(ds, profile, patient, study)
    ds.Modality = profile.dicom_modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDate = study["StudyDate"]
    ds.ContentDate = study["StudyDate"]
    ds.ContentTime = study["StudyTime"]
    ds.InstanceNumber = instance_number
    ds.BodyPartExamined = _BODY_PART[profile.modality]
    ds.ImageType = ["ORIGINAL", "PRIMARY"] + (["AXIAL"] if profile.modality == "ct" else [])
    spacing = [profile.pixel_spacing_mm, profile.pixel_spacing_mm]
    ds.PixelSpacing = spacing

    if profile.modality == "cxr":
        ds.ViewPosition = view
        ds.PatientOrientation = ["L", "F"]
        ds.ImagerPixelSpacing = spacing
        ds.SeriesDescription = f"CHEST {view}"
    elif profile.modality == "mammo":
        ds.ViewPosition = view
        ds.ImageLaterality = laterality
        ds.Laterality = laterality
        # Chest wall at the left edge for a right breast: columns run toward the nipple.
        ds.PatientOrientation = ["A", "R"] if laterality == "L" else ["P", "L"]
        ds.BreastImplantPresent = "NO"
        ds.SeriesDescription = f"{laterality}{view}"
    if profile.dicom_modality in ("DX", "MG"):
        ds.PresentationIntentType = "FOR PRESENTATION"
    if ct_position is not None:
        ds.ImagePositionPatient = list(ct_position)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = profile.slice_mm
        ds.SliceLocation = ct_position[2]
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.KVP = 120
        ds.SeriesDescription = "CHEST 10MM"
    ds.RescaleSlope = profile.rescale_slope
    ds.RescaleIntercept = profile.rescale_intercept
    ds.RescaleType = "HU" if profile.modality == "ct" else "US"
    if profile.window:
        # A linear window over the whole stored range: display = stored, nothing clipped.
        full = float(1 << profile.bits_stored)
        ds.WindowCenter = profile.rescale_slope * full / 2.0 + profile.rescale_intercept
        ds.WindowWidth = profile.rescale_slope * full
    return ds


def attach_pixels(ds: Dataset, profile: SiteProfile, stored: np.ndarray) -> None:
    """Set the pixel data of ``ds`` and encode it in the site's transfer syntax."""
    ds.set_pixel_data(stored, profile.photometric, profile.bits_stored, generate_instance_uid=False)
    if profile.transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(profile.transfer_syntax, stored, generate_instance_uid=False)


def save(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM Part 10 file (preamble, 'DICM', file meta)."""
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def text_report_dataset(profile: SiteProfile, patient: Mapping[str, Any], study: Mapping[str, Any],
                        *, series_uid: str, sop_uid: str, series_number: int) -> Dataset:
    """A Basic Text SR object (a report, not an image) in the given study."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    _patient_study_header(ds, profile, patient, study)
    ds.Modality = "SR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    ds.ContentDate = study["StudyDate"]
    ds.ContentTime = study["StudyTime"]
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    item.TextValue = "No acute abnormality. Comparison with prior study recommended."
    ds.ContentSequence = Sequence([item])
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    return code
