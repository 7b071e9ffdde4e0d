"""MIMIC-CXR (DICOM) and MIMIC-CXR-JPG, with race, sex and age from MIMIC-IV.

Under the root (each table as .csv or .csv.gz):

- ``mimic-cxr-2.0.0-metadata``: dicom_id, subject_id, study_id, ViewPosition, StudyDate;
  it lists the images, at files/p{first two digits of subject_id}/p{subject_id}/s{study_id}/
  {dicom_id}.dcm (option ``format: dicom``, the default) or .jpg (``format: jpg``);
- ``mimic-cxr-2.0.0-split``: dicom_id, split (kept as ``official_split``, informational);
- ``mimic-cxr-2.0.0-chexpert`` or ``-negbio`` (option ``labels``): subject_id, study_id and
  the 14 findings.

Under the option ``mimic_iv_root``: ``admissions`` and ``patients``, in core/ (MIMIC-IV
v1.0, race in the column ``ethnicity``) or hosp/ (v2 and later, column ``race``); which one
is detected from the files present. A patient's race is the one their admissions name
(unknown and declined values ignored); two different races exclude the patient
("excluded: conflicting race records"). Age at a study = anchor_age + (year of the study's
StudyDate - anchor_year): both are shifted together in MIMIC, so the difference is real.
Only the views of the option ``views`` (default AP, PA) are kept.

BMI: where ``mimic_iv_root`` has ``hosp/omr``, each study gets the BMI measured nearest to its
StudyDate within ``bmi_window_days`` (default 365), recorded or from height and weight
(:func:`readrace.confounders.variables.match_omr_bmi`); the manifest's ``bmi_source`` says
how each was matched or why not, and the confounders' coverage table
(results/tables/confounder_variables.csv) counts them. Without omr the studies have no BMI.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError, non_frontal_exclusion, read_table
from readrace.ingest.adapters.generic import listed_and_found
from readrace.ingest.adapters.racemap import map_demographics, map_sex, patient_race
from readrace.ingest.values import parse_value
from readrace.labels import FINDINGS

log = logging.getLogger(__name__)

_FORMATS = {"dicom": ".dcm", "jpg": ".jpg"}
_LABELS = ("chexpert", "negbio")


def find_table(folder: Path, stem: str) -> Path:
    """``stem``.csv.gz or ``stem``.csv in ``folder``; DatasetError naming both when neither exists."""
    for suffix in (".csv.gz", ".csv"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise DatasetError(f"missing table {folder / stem}.csv(.gz)")


def age_at_study(anchor_age: pd.Series, anchor_year: pd.Series, study_date: pd.Series) -> pd.Series:
    """anchor_age + (year of StudyDate - anchor_year). Where a part is present but not a
    number, the age is that text, so that ingestion counts an invalid age (readrace.ingest.values)
    instead of a missing one; where a part is missing, the age is missing."""
    parts = [anchor_age, anchor_year, study_date.astype(object).str[:4]]
    parsed = [[parse_value(value) for value in part] for part in parts]
    ages = []
    for i in range(len(anchor_age)):
        (age, bad_age), (anchor, bad_anchor), (year, bad_year) = (p[i] for p in parsed)
        bad = [part.iloc[i] for part, flag in zip(parts, (bad_age, bad_anchor, bad_year)) if flag]
        ages.append(str(bad[0]) if bad else age + (year - anchor))
    return pd.Series(ages, index=anchor_age.index, dtype=object)


class MimicCxrAdapter(DatasetAdapter):
    """MIMIC-CXR v2.0.0 (DICOM or JPG) joined to MIMIC-IV admissions and patients."""

    name = "mimic_cxr"

    def __init__(self, root, options):
        super().__init__(root, options)
        self.format = options.get("format", "dicom")
        if self.format not in _FORMATS:
            raise DatasetError(f"{self.name}: format must be one of {', '.join(_FORMATS)}, not {self.format!r}")
        self.labels = options.get("labels", "chexpert")
        if self.labels not in _LABELS:
            raise DatasetError(f"{self.name}: labels must be one of {', '.join(_LABELS)}, not {self.labels!r}")
        self.views = [str(view).upper() for view in options.get("views", ["AP", "PA"])]
        self.bmi_window_days = int(options.get("bmi_window_days", 365))

    def _metadata(self) -> pd.DataFrame:
        path = find_table(self.root, "mimic-cxr-2.0.0-metadata")
        table = read_table(
            path, ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate"),
            dtype={"dicom_id": str, "subject_id": str, "study_id": str, "StudyDate": str},
        )
        subject, study = table["subject_id"], table["study_id"]
        suffix = _FORMATS[self.format]
        table["path"] = "files/p" + subject.str[:2] + "/p" + subject + "/s" + study + "/" + table["dicom_id"] + suffix
        split_path = find_table(self.root, "mimic-cxr-2.0.0-split")
        split = read_table(split_path, ("dicom_id", "split"), dtype={"dicom_id": str})
        table = table.merge(split[["dicom_id", "split"]], on="dicom_id", how="left", validate="one_to_one")
        return table

    def _mimic_iv(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(admissions with subject_id and a ``race_value`` column, patients), v1.0 or v2+."""
        option = self.options.get("mimic_iv_root")
        if not option:
            raise DatasetError(f"{self.name}: the option 'mimic_iv_root' (the MIMIC-IV folder) is required for race")
        mimic_iv = Path(option)
        for module, race_column in (("hosp", "race"), ("core", "ethnicity")):
            try:
                admissions_path = find_table(mimic_iv / module, "admissions")
            except DatasetError:
                continue
            admissions = read_table(admissions_path, ("subject_id", race_column), dtype={"subject_id": str})
            patients_path = find_table(mimic_iv / module, "patients")
            patients = read_table(
                patients_path, ("subject_id", "gender", "anchor_age", "anchor_year"), dtype={"subject_id": str}
            )
            return admissions.rename(columns={race_column: "race_value"}), patients
        raise DatasetError(
            f"missing table {mimic_iv}/hosp/admissions.csv(.gz) (MIMIC-IV v2+) or core/admissions.csv(.gz) (v1.0)"
        )

    def list_files(self) -> list[str]:
        return listed_and_found(self.root, self._metadata()["path"], "mimic-cxr-2.0.0-metadata")

    def study_table(self) -> pd.DataFrame:
        metadata = self._metadata()
        studies = metadata.groupby(["subject_id", "study_id"], sort=True)["StudyDate"].min().reset_index()
        labels_path = find_table(self.root, f"mimic-cxr-2.0.0-{self.labels}")
        keys = ["subject_id", "study_id"]
        labels = read_table(labels_path, (*keys, *FINDINGS), dtype=dict.fromkeys(keys, str), as_written=FINDINGS)
        studies = studies.merge(labels[[*keys, *FINDINGS]], on=keys, how="left", validate="one_to_one")

        admissions, patients = self._mimic_iv()
        mapped = map_demographics(admissions["race_value"])
        races = patient_race(admissions["subject_id"], mapped["race"], mapped["ethnicity"])
        studies = studies.join(races, on="subject_id")
        if patients["subject_id"].duplicated().any():
            raise DatasetError(f"{self.name}: MIMIC-IV patients lists a subject_id twice")
        studies = studies.merge(patients, on="subject_id", how="left", validate="many_to_one")
        studies["age"] = age_at_study(studies["anchor_age"], studies["anchor_year"], studies["StudyDate"])
        studies["sex"] = studies["gender"].map(map_sex).astype(object)
        studies["bmi"], studies["bmi_source"] = self._bmi(studies)
        studies = studies.rename(columns={"subject_id": "patient_key", "study_id": "study_key"})
        keep = ["patient_key", "study_key", "race", "ethnicity", "sex", "age", "exclusion", "bmi", "bmi_source",
                *FINDINGS]
        return studies[keep]

    def _bmi(self, studies: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """The BMI of each study from MIMIC-IV omr (NaN without the table or a match) and how
        it was matched (``omr {outcome}`` of :func:`readrace.confounders.variables.match_omr_bmi`), which the manifest
        keeps so that the confounders' coverage table counts it."""
        from readrace.confounders.variables import OMR_COLUMNS, OMR_PREFIX, match_omr_bmi

        try:
            path = find_table(Path(self.options["mimic_iv_root"]) / "hosp", "omr")
        except DatasetError:
            log.warning("%s: no MIMIC-IV hosp/omr table; the studies have no BMI", self.name)
            return pd.Series(np.nan, index=studies.index), pd.Series(f"{OMR_PREFIX}unmatched: no omr table", index=studies.index)
        omr = read_table(path, OMR_COLUMNS, dtype={"subject_id": str, "result_value": str})
        matched, counts = match_omr_bmi(studies[["subject_id", "study_id", "StudyDate"]], omr, self.bmi_window_days)
        for outcome, n in zip(counts["outcome"], counts["studies"]):
            log.info("%s: BMI from omr, %s: %d studies", self.name, outcome, n)
        sources = OMR_PREFIX + matched["bmi_outcome"]
        return pd.Series(matched["bmi"].to_numpy(), index=studies.index), pd.Series(sources.to_numpy(), index=studies.index)

    def file_table(self) -> pd.DataFrame:
        metadata = self._metadata()
        view = metadata["ViewPosition"].astype(object).where(metadata["ViewPosition"].notna())
        view = view.str.strip().str.upper()
        exclusion = pd.Series(np.nan, index=metadata.index, dtype=object)
        detail = pd.Series("", index=metadata.index, dtype=object)
        other = ~view.isin(self.views)
        exclusion[other], detail[other] = non_frontal_exclusion(view[other])
        table = pd.DataFrame(
            {
                "patient_key": metadata["subject_id"],
                "study_key": metadata["study_id"],
                "view": view,
                "official_split": metadata["split"],
                "exclusion": exclusion,
                "exclusion_detail": detail,
            }
        )
        table.index = pd.Index(metadata["path"], name="path")
        return table
