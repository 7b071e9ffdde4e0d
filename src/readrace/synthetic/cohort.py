"""generate_cohort: write one synthetic dataset (one modality, one site) into a folder.

Layout of ``out_dir``::

    dicom/p{NNNNN}/s{NN}/i{NN}.dcm            radiographs and mammograms
    dicom/p{NNNNN}/s{NN}/se{NN}/IM{NNNN}.dcm  CT slices (names and InstanceNumbers shuffled)
    patients.csv, studies.csv                 the population tables
    masks/{SOPInstanceUID}.npy                uint8 lung masks (cxr, ct), native grid
    truth/{SOPInstanceUID}.npy                float32 intended intensity (write_truth only)
    truth.csv                                 one row per file written

Every random draw comes from ``numpy.random.default_rng([seed, stream, *indices])`` with
generator indices (patient, study, image), so an image does not depend on how many images
came before it, and the anatomy does not depend on the signal: the cohorts of two specs
that differ only in ``signal`` have identical anatomy and identical UIDs, and their truth
images differ by exactly the planted pattern (up to clipping).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from readrace import labels
from readrace.synthetic import anatomy
from readrace.synthetic.dicom_writer import (
    attach_pixels,
    image_dataset,
    make_uid,
    save,
    text_report_dataset,
)
from readrace.synthetic.population import PATIENT_COLUMNS, sample_records, study_columns
from readrace.synthetic.signal import class_patterns, region_weight
from readrace.synthetic.sites import SiteProfile, get_site, second_manufacturer, stored_from_truth
from readrace.synthetic.spec import CohortSpec, parse_region

#: RMS of the planted pattern at strength 1, before region masking: about 1.5 % of the
#: [0, 1] intensity range for radiographs and mammograms (invisible by eye next to anatomy
#: and noise), 12 HU for CT.
BASE_AMPLITUDE: dict[str, float] = {"cxr": 0.015, "mammo": 0.015, "ct": 12.0}

#: Per-image multiplicative jitter of the amplitude (uniform).
AMPLITUDE_JITTER = (0.85, 1.15)

#: Range the CT truth is clipped to, in HU (well inside the signed 16-bit stored range).
CT_HU_RANGE = (-2048.0, 3071.0)

TRUTH_COLUMNS = (
    "path", "kind", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
    "race", "signal_class", "view", "laterality", "slice_z", "photometric", "transfer_syntax",
)

# Random streams of the cohort seed (population.STREAM_POPULATION is 1).
STREAM_LAYOUT = 2
STREAM_ANATOMY = 3
STREAM_JITTER = 4
STREAM_BROKEN = 5
STREAM_ATYPICAL = 6
STREAM_MANUFACTURER = 7

_MAMMO_VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))
_BROKEN_SERIES = 91  # series/instance numbers of the broken objects


def _rng(seed: int, stream: int, *indices: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *indices])


@dataclass
class _Writer:
    """Plants the signal, quantises, writes one image and records its truth row."""

    spec: CohortSpec
    profile: SiteProfile
    out: Path
    patterns: dict[str, np.ndarray]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def signal_class(self, race: str) -> str:
        return race if race in self.patterns else ""

    def plant(self, image: np.ndarray, lung_mask: np.ndarray | None, signal_class: str,
              rng: np.random.Generator) -> np.ndarray:
        """Intended intensity: anatomy plus the class pattern, clipped to the valid range."""
        # Drawn even without a signal, so that every other draw stays aligned.
        jitter = rng.uniform(*AMPLITUDE_JITTER)
        strength = self.spec.signal.strength
        if signal_class and strength > 0:
            weight = region_weight(self.spec.signal.region, image.shape, lung_mask)
            amplitude = strength * BASE_AMPLITUDE[self.spec.modality] * jitter
            image = image + amplitude * weight * self.patterns[signal_class]
        low, high = CT_HU_RANGE if self.profile.signed else (0.0, 1.0)
        return np.clip(image, low, high).astype(np.float32)

    def artefact(self, truth: np.ndarray, patient: dict[str, Any]) -> np.ndarray:
        """An atypical patient's strong artefact: a bright square (a tenth of the image side)
        at a place fixed per patient; other patients' images are returned unchanged."""
        if not patient.get("_atypical", False):
            return truth
        rng = _rng(self.spec.seed, STREAM_ATYPICAL, int(patient["index"]))
        h, w = truth.shape
        side = max(2, min(h, w) // 10)
        y, x = int(rng.integers(h // 5, h - h // 5 - side)), int(rng.integers(w // 5, w - w // 5 - side))
        low, high = CT_HU_RANGE if self.profile.signed else (0.0, 1.0)
        out = truth.copy()
        out[y:y + side, x:x + side] += self.spec.atypical.artefact * (high - low)
        return np.clip(out, low, high).astype(np.float32)

    def write_image(self, patient: dict[str, Any], study: dict[str, Any], truth: np.ndarray,
                    lung_mask: np.ndarray | None, *, path: str, series_uid: str, sop_uid: str,
                    series_number: int, instance_number: int, view: str = "",
                    laterality: str = "", ct_position: tuple[float, float, float] | None = None,
                    frame_of_reference_uid: str = "", kind: str = "image") -> None:
        """Write one image file (kind "image", "truncated" or "no-pixel-data")."""
        ds = image_dataset(self.profile, patient, study, series_uid=series_uid, sop_uid=sop_uid,
                           series_number=series_number, instance_number=instance_number,
                           view=view, laterality=laterality, ct_position=ct_position,
                           frame_of_reference_uid=frame_of_reference_uid)
        stored = stored_from_truth(self.profile, truth)
        if kind == "no-pixel-data":
            ds.set_pixel_data(stored, self.profile.photometric, self.profile.bits_stored,
                              generate_instance_uid=False)
            del ds.PixelData
        else:
            attach_pixels(ds, self.profile, stored)
        target = self.out / path
        save(ds, target)
        if kind == "truncated":
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 2])
        if kind == "image":
            if lung_mask is not None:
                np.save(self.out / "masks" / f"{sop_uid}.npy", lung_mask.astype(np.uint8))
            if self.spec.write_truth:
                np.save(self.out / "truth" / f"{sop_uid}.npy", truth.astype(np.float32))
        self.rows.append({
            "path": path,
            "kind": kind,
            "PatientID": patient["PatientID"],
            "StudyInstanceUID": study["StudyInstanceUID"],
            "SeriesInstanceUID": series_uid,
            "SOPInstanceUID": sop_uid,
            "race": patient["race"],
            "signal_class": self.signal_class(_signal_race(patient)) if kind != "no-pixel-data" else "",
            "view": view,
            "laterality": laterality,
            "slice_z": ct_position[2] if ct_position is not None else np.nan,
            "photometric": self.profile.photometric,
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        })

    # -- one study per modality ------------------------------------------------------------

    def cxr_study(self, patient: dict[str, Any], study: dict[str, Any]) -> None:
        p, s = int(patient["index"]), int(study["study_index"])
        layout = _rng(self.spec.seed, STREAM_LAYOUT, p, s)
        findings = {name for name in labels.FINDINGS if study[name] == 1.0}
        # Portable AP films are more common in patients with lines and tubes.
        ap_probability = 0.7 if "Support Devices" in findings else 0.25
        n_images = 1 if layout.random() < 0.7 else 2
        for i in range(1, n_images + 1):
            view = "AP" if layout.random() < ap_probability else "PA"
            self.cxr_image(patient, study, i, view, findings, path_name=f"i{i:02d}.dcm")

    def cxr_image(self, patient: dict[str, Any], study: dict[str, Any], i: int, view: str,
                  findings: set[str], path_name: str, kind: str = "image") -> None:
        p, s = int(patient["index"]), int(study["study_index"])
        faint = self.spec.faint_findings
        visibility = float(faint[1]) if faint is not None and patient["race"] == faint[0] else 1.0
        image, mask = anatomy.chest_radiograph(
            self.profile.shape, self.profile.pixel_spacing_mm, bmi=patient["bmi"],
            sex=patient["sex"], findings=findings, view=view, visibility=visibility,
            rng=_rng(self.spec.seed, STREAM_ANATOMY, p, s, i),
            shift_mm=self.profile.shift_mm, magnification=self.profile.magnification)
        truth = self.artefact(self.plant(image, mask, self.signal_class(_signal_race(patient)),
                                         _rng(self.spec.seed, STREAM_JITTER, p, s, i)), patient)
        self.write_image(patient, study, truth, mask, path=f"dicom/p{p:05d}/s{s:02d}/{path_name}",
                         series_uid=self.uid("series", p, s, i), sop_uid=self.uid("sop", p, s, i),
                         series_number=i, instance_number=1, view=view, kind=kind)

    def mammo_study(self, patient: dict[str, Any], study: dict[str, Any]) -> None:
        p, s = int(patient["index"]), int(study["study_index"])
        series_uid = self.uid("series", p, s, 1)
        for i, (laterality, view) in enumerate(_MAMMO_VIEWS, start=1):
            self.mammo_image(patient, study, i, laterality, view, series_uid, f"i{i:02d}.dcm")

    def mammo_image(self, patient: dict[str, Any], study: dict[str, Any], i: int, laterality: str,
                    view: str, series_uid: str, path_name: str, kind: str = "image") -> None:
        p, s = int(patient["index"]), int(study["study_index"])
        image = anatomy.mammogram(
            self.profile.shape, self.profile.pixel_spacing_mm, view=view, laterality=laterality,
            density=study["breast_density"], bmi=patient["bmi"],
            rng=_rng(self.spec.seed, STREAM_ANATOMY, p, s, i))
        truth = self.artefact(self.plant(image, None, self.signal_class(_signal_race(patient)),
                                         _rng(self.spec.seed, STREAM_JITTER, p, s, i)), patient)
        self.write_image(patient, study, truth, None, path=f"dicom/p{p:05d}/s{s:02d}/{path_name}",
                         series_uid=series_uid, sop_uid=self.uid("sop", p, s, i),
                         series_number=1 if kind == "image" else i, instance_number=i,
                         view=view, laterality=laterality, kind=kind)

    def ct_study(self, patient: dict[str, Any], study: dict[str, Any], series: int = 1,
                 slices: tuple[int, ...] | None = None, kind: str = "image") -> None:
        """One axial series. ``slices`` picks a subset (broken files use a single slice)."""
        p, s = int(patient["index"]), int(study["study_index"])
        profile = self.profile
        volume, masks = anatomy.chest_ct(profile.shape, profile.pixel_spacing_mm,
                                         profile.n_slices, bmi=patient["bmi"], sex=patient["sex"],
                                         rng=_rng(self.spec.seed, STREAM_ANATOMY, p, s, series))
        layout = _rng(self.spec.seed, STREAM_LAYOUT, p, s, series)
        n = profile.n_slices
        z_top = round(float(layout.uniform(-60.0, 60.0)), 1)
        # File names never follow slice order; InstanceNumbers follow it in only half of
        # the series, so ingestion has to sort by ImagePositionPatient.
        names = layout.permutation(n)
        if np.all(np.diff(names) > 0):
            names = names[::-1]
        instance = layout.permutation(n) + 1 if layout.random() < 0.5 else np.arange(1, n + 1)
        jitter = _rng(self.spec.seed, STREAM_JITTER, p, s, series)
        series_uid = self.uid("series", p, s, series)
        frame_uid = self.uid("frame", p, s, series)
        x0 = -(profile.cols - 1) / 2.0 * profile.pixel_spacing_mm
        y0 = -(profile.rows - 1) / 2.0 * profile.pixel_spacing_mm
        signal_class = self.signal_class(_signal_race(patient))
        for k in range(n):
            truth = self.artefact(self.plant(volume[k], masks[k], signal_class, jitter), patient)
            if slices is not None and k not in slices:
                continue
            position = (round(x0, 2), round(y0, 2), round(z_top - k * profile.slice_mm, 2))
            self.write_image(
                patient, study, truth, masks[k],
                path=f"dicom/p{p:05d}/s{s:02d}/se{series:02d}/IM{names[k] + 1:04d}.dcm",
                series_uid=series_uid, sop_uid=self.uid("sop", p, s, series, k),
                series_number=series, instance_number=int(instance[k]), view="AXIAL",
                ct_position=position, frame_of_reference_uid=frame_uid, kind=kind)

    def uid(self, *parts: object) -> str:
        spec = self.spec
        return make_uid(spec.modality, spec.site, spec.seed, *parts)

    # -- broken files ----------------------------------------------------------------------

    def broken_files(self, patients: pd.DataFrame, studies: pd.DataFrame) -> None:
        """One truncated, one without pixel data, one non-image object, one stray text file."""
        rng = _rng(self.spec.seed, STREAM_BROKEN)
        picks = rng.integers(0, len(studies), size=4)
        by_id = patients.set_index("PatientID", drop=False)

        def host(j: int) -> tuple[dict[str, Any], dict[str, Any]]:
            study = studies.iloc[int(picks[j])].to_dict()
            return by_id.loc[study["PatientID"]].to_dict(), study

        for j, kind in enumerate(("truncated", "no-pixel-data")):
            patient, study = host(j)
            number = _BROKEN_SERIES + j
            if self.spec.modality == "cxr":
                findings = {name for name in labels.FINDINGS if study[name] == 1.0}
                self.cxr_image(patient, study, number, "PA", findings, f"i{number:02d}.dcm", kind)
            elif self.spec.modality == "mammo":
                self.mammo_image(patient, study, number, "R", "CC",
                                 self.uid("series", patient["index"], study["study_index"], number),
                                 f"i{number:02d}.dcm", kind)
            else:
                self.ct_study(patient, study, series=number, slices=(self.profile.n_slices // 2,),
                              kind=kind)

        patient, study = host(2)
        p, s, number = int(patient["index"]), int(study["study_index"]), _BROKEN_SERIES + 2
        series_uid, sop_uid = self.uid("series", p, s, number), self.uid("sop", p, s, number)
        path = f"dicom/p{p:05d}/s{s:02d}/i{number:02d}.dcm"
        ds = text_report_dataset(self.profile, patient, study, series_uid=series_uid,
                                 sop_uid=sop_uid, series_number=number)
        save(ds, self.out / path)
        self._other_row(path, "non-image", patient, study, series_uid, sop_uid,
                        str(ds.file_meta.TransferSyntaxUID))

        patient, study = host(3)
        p, s = int(patient["index"]), int(study["study_index"])
        path = f"dicom/p{p:05d}/s{s:02d}/notes.txt"
        (self.out / path).parent.mkdir(parents=True, exist_ok=True)
        (self.out / path).write_text("Technologist note: patient repositioned, image repeated.\n")
        self._other_row(path, "not-dicom", patient, study, "", "", "")

    def _other_row(self, path: str, kind: str, patient: dict[str, Any], study: dict[str, Any],
                   series_uid: str, sop_uid: str, transfer_syntax: str) -> None:
        self.rows.append({
            "path": path, "kind": kind, "PatientID": patient["PatientID"],
            "StudyInstanceUID": study["StudyInstanceUID"], "SeriesInstanceUID": series_uid,
            "SOPInstanceUID": sop_uid, "race": patient["race"], "signal_class": "", "view": "",
            "laterality": "", "slice_z": np.nan, "photometric": "",
            "transfer_syntax": transfer_syntax,
        })


def generate_cohort(spec: CohortSpec, out_dir: str | Path, progress: bool = True) -> pd.DataFrame:
    """Write the synthetic dataset described by ``spec`` into ``out_dir``.

    ``out_dir`` must be empty or absent (a half-overwritten dataset would break the
    "every file is in truth.csv" contract). Returns the truth table, also written as
    ``truth.csv``: one row per file with its kind ("image", "truncated", "no-pixel-data",
    "non-image", "not-dicom"), UIDs, race and the class whose pattern was planted.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; generate_cohort writes into a fresh folder")
    profile = get_site(spec.modality, spec.site)
    if spec.modality == "mammo" and parse_region(spec.signal.region)[0] in ("lung", "nonlung"):
        raise ValueError("mammograms have no lung mask for a lung/nonlung signal region")
    out.mkdir(parents=True, exist_ok=True)
    (out / "dicom").mkdir()
    if spec.modality in ("cxr", "ct"):
        (out / "masks").mkdir()
    if spec.write_truth:
        (out / "truth").mkdir()

    bmi_by_race = dict(spec.bmi_by_race) if spec.bmi_by_race is not None else None
    patients, studies = sample_records(spec.n_patients, spec.modality, spec.seed, bmi_by_race)
    if spec.atypical.patients:
        patients = _make_atypical(patients, spec)
        patients.loc[patients["_atypical"], ["PatientID", "_signal_race", "race"]].rename(
            columns={"_signal_race": "signal_race"}).to_csv(out / "atypical.csv", index=False)
    patterns = class_patterns(spec.signal, labels.task_classes(spec.modality), profile.shape)
    writer = _Writer(spec, profile, out, patterns)
    study_writer = {"cxr": writer.cxr_study, "ct": writer.ct_study,
                    "mammo": writer.mammo_study}[spec.modality]

    second = _second_manufacturer(patients, spec)
    profiles = {False: profile, True: second_manufacturer(profile)}
    studies_of = studies.groupby("PatientID", sort=False)
    for patient, by_second in tqdm(zip(patients.to_dict("records"), second), disable=not progress, total=len(patients),
                                   desc=f"synthetic {spec.modality} site {spec.site}", unit="patient"):
        writer.profile = profiles[bool(by_second)]
        for study in studies_of.get_group(patient["PatientID"]).to_dict("records"):
            study_writer(patient, study)
    writer.profile = profile
    if spec.second_manufacturer > 0:
        pd.DataFrame({"PatientID": patients["PatientID"],
                      "manufacturer": [profiles[bool(b)].manufacturer for b in second]}).to_csv(
            out / "manufacturers.csv", index=False)
    if spec.broken_files:
        writer.broken_files(patients, studies)

    patients.loc[:, list(PATIENT_COLUMNS)].to_csv(out / "patients.csv", index=False)
    studies.loc[:, list(study_columns(spec.modality))].to_csv(out / "studies.csv", index=False)
    pd.DataFrame(writer.rows, columns=list(TRUTH_COLUMNS)).to_csv(out / "truth.csv", index=False)
    # Return what readers of truth.csv see (empty cells as NaN), not a lookalike.
    return pd.read_csv(out / "truth.csv")


def _second_manufacturer(patients: pd.DataFrame, spec: CohortSpec) -> np.ndarray:
    """Whether the second manufacturer writes each patient's images: a share of the patients,
    drawn from a stream of its own (none at share 0, without a draw, so that the default
    cohort's bytes do not change)."""
    if spec.second_manufacturer <= 0:
        return np.zeros(len(patients), dtype=bool)
    return _rng(spec.seed, STREAM_MANUFACTURER).random(len(patients)) < spec.second_manufacturer


def _signal_race(patient: dict[str, Any]) -> str:
    """The race whose pattern is planted: the recorded one, except for an atypical patient
    with a flipped label, whose pixels keep the pattern of its true race."""
    return patient.get("_signal_race", patient["race"])


def _make_atypical(patients: pd.DataFrame, spec: CohortSpec) -> pd.DataFrame:
    """Mark ``spec.atypical.patients`` patients (among those with a planted class) atypical:
    their images get a strong artefact and, with ``flip_label``, their recorded race becomes
    the next class of the task while their pixels keep their true race's pattern. Drawn from
    a stream of its own, so that every other draw of the cohort is unchanged."""
    classes = list(labels.task_classes(spec.modality))
    eligible = np.flatnonzero(patients["race"].isin(classes).to_numpy())
    n = min(spec.atypical.patients, len(eligible))
    chosen = _rng(spec.seed, STREAM_ATYPICAL).choice(eligible, size=n, replace=False)
    patients = patients.copy()
    patients["_signal_race"] = patients["race"]
    patients["_atypical"] = False
    patients.loc[patients.index[chosen], "_atypical"] = True
    if spec.atypical.flip_label:
        flip = patients.index[chosen]
        patients.loc[flip, "race"] = [classes[(classes.index(r) + 1) % len(classes)] for r in patients.loc[flip, "race"]]
    return patients
