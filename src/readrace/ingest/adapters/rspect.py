"""RSNA-STR Pulmonary Embolism CT (RSPECT): a DICOM tree, train.csv, and a demographics table.

The public release has no race. Root holds ``train.csv`` (StudyInstanceUID,
SeriesInstanceUID, SOPInstanceUID, ...) and the images at
{images}/StudyInstanceUID/SeriesInstanceUID/SOPInstanceUID.dcm (option ``images``, default
"train"). Race comes from a table the user supplies (option ``demographics``, required: a
CSV with StudyInstanceUID and race, optionally ethnicity, sex, age and patient), keyed by
StudyInstanceUID. The patient key is the StudyInstanceUID unless the table has a
``patient`` column (then a patient whose studies name two races is excluded); the dataset's
descriptor says which (units.patient is "study" unless every row names its patient). A study
listed in train.csv but absent from the demographics table is quarantined by ingestion as
having no demographics record.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError, read_table
from readrace.ingest.adapters.generic import first_duplicate, listed_and_found
from readrace.ingest.adapters.racemap import map_demographics, patient_race

_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class RspectAdapter(DatasetAdapter):
    """RSPECT CT studies with a user-supplied race table keyed by StudyInstanceUID."""

    name = "rspect"

    def _images(self) -> pd.DataFrame:
        table = read_table(self.root / "train.csv", _UIDS, dtype=dict.fromkeys(_UIDS, str))
        folder = self.options.get("images", "train").strip("/")
        table["path"] = (
            f"{folder}/" + table["StudyInstanceUID"] + "/" + table["SeriesInstanceUID"] + "/"
            + table["SOPInstanceUID"] + ".dcm"
        )
        return table

    def _demographics(self) -> pd.DataFrame:
        path = self.option_path("demographics", what="a CSV with StudyInstanceUID and race")
        table = read_table(
            path, ("StudyInstanceUID", "race"), dtype={"StudyInstanceUID": str, "patient": str}, as_written=("age",)
        )
        twice = first_duplicate(table["StudyInstanceUID"])
        if twice:
            raise DatasetError(f"table {path}: StudyInstanceUID {twice} appears twice")
        return table

    def _patients(self) -> pd.Series:
        """StudyInstanceUID -> patient key."""
        table = self._demographics()
        patients = table["patient"] if "patient" in table else table["StudyInstanceUID"]
        return pd.Series(patients.fillna(table["StudyInstanceUID"]).to_numpy(), index=table["StudyInstanceUID"])

    def list_files(self) -> list[str]:
        return listed_and_found(self.root, self._images()["path"], self.root / "train.csv")

    def units(self) -> dict[str, str]:
        # Patients are keyed by their study wherever the table names no patient.
        table = self._demographics()
        keyed = "patient" in table and table["patient"].notna().all()
        return {"patient": "patient" if keyed else "study", "study": "study"}

    def study_table(self) -> pd.DataFrame:
        table = self._demographics()
        mapped = map_demographics(
            table["race"], table.get("ethnicity"), table["sex"] if "sex" in table else None
        )
        patients = self._patients().to_numpy()
        races = patient_race(pd.Series(patients), mapped["race"], mapped["ethnicity"])
        studies = pd.DataFrame(
            {
                "patient_key": patients,
                "study_key": table["StudyInstanceUID"].to_numpy(),
                "sex": mapped["sex"].to_numpy() if "sex" in mapped else np.nan,
                "age": table["age"].to_numpy(dtype=object) if "age" in table else np.nan,  # parsed by ingestion
            }
        )
        studies = studies.join(races, on="patient_key")
        return studies[["patient_key", "study_key", "race", "ethnicity", "sex", "age", "exclusion"]]

    def file_table(self) -> pd.DataFrame:
        images = self._images()
        patients = self._patients()
        study = images["StudyInstanceUID"]
        table = pd.DataFrame(
            {"patient_key": study.map(patients).fillna(study).to_numpy(), "study_key": study.to_numpy()},
            index=pd.Index(images["path"], name="path"),
        )
        return table
