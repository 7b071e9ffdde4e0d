"""The synthetic cohort, read like any dataset: a DICOM tree plus patients and studies tables."""

from __future__ import annotations

import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, read_table, scan_tree
from readrace.labels import FINDINGS


class SyntheticAdapter(DatasetAdapter):
    """A folder written by :func:`readrace.synthetic.generate_cohort`."""

    name = "synthetic"

    def list_files(self) -> list[str]:
        return [f"dicom/{path}" for path in scan_tree(self.root / "dicom")]

    def study_table(self) -> pd.DataFrame:
        patients = read_table(
            self.root / "patients.csv", ("PatientID", "race", "ethnicity", "sex", "bmi"), dtype={"PatientID": str}
        )
        studies = read_table(
            self.root / "studies.csv", ("PatientID", "StudyInstanceUID", "age"), dtype={"PatientID": str}
        )
        table = studies.merge(patients, on="PatientID", how="left", validate="many_to_one")
        table = table.rename(columns={"PatientID": "patient_key", "StudyInstanceUID": "study_key"})
        keep = ["patient_key", "study_key", "race", "ethnicity", "sex", "age", "bmi"]
        keep += [c for c in (*FINDINGS, "breast_density") if c in table]
        return table[keep]
