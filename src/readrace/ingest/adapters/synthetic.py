"""The synthetic cohort, read like any dataset: a DICOM tree plus patients and studies tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, read_table, scan_tree
from readrace.labels import FINDINGS


class SyntheticAdapter(DatasetAdapter):
    """A folder written by :func:`readrace.synthetic.generate_cohort`."""

    name = "synthetic"

    def list_files(self) -> list[str]:
        return [f"dicom/{path}" for path in scan_tree(self.root / "dicom")]

    def lung_mask(self, path: str) -> np.ndarray | None:
        """``masks/{SOPInstanceUID}.npy`` of the file (its UID from truth.csv); None for a
        mammogram or a file written without one."""
        if not hasattr(self, "_mask_uids"):
            truth = self.root / "truth.csv"
            table = read_table(truth, ("path", "SOPInstanceUID"), dtype=str) if truth.is_file() else None
            self._mask_uids = {} if table is None else dict(zip(table["path"], table["SOPInstanceUID"]))
        uid = self._mask_uids.get(path)
        mask = self.root / "masks" / f"{uid}.npy"
        return np.load(mask) if uid and mask.is_file() else None

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
