"""NLST (National Lung Screening Trial) CT: a DICOM tree plus the participant table.

The participant table (option ``participants``, e.g. "nlst_780_prsn_idc_20210527.csv",
relative to the root or absolute) has pid, race, ethnic, gender and age as the trial's codes:

- race: 1 White, 2 Black, 3 Asian, 4 American Indian or Alaska Native, 5 Native Hawaiian or
  Other Pacific Islander, 6 more than one race (4-6 -> Other), 7 refused (-> Unknown),
  95/96/98/99 missing (-> NaN, "no race recorded");
- ethnic: 1 Hispanic or Latino, 2 not, 7/95/98/99 unknown; gender: 1 male, 2 female;
- age: age at randomisation, in years (used for every study of the participant).

The DICOM PatientID is the pid. The study table is keyed by participant only: its study key
is the pid and :meth:`NlstAdapter.record_key` returns (PatientID, PatientID). Reading each
file's StudyInstanceUID would need a header scan of the whole tree inside every ingestion
job (the study table is built per shard), which for NLST's millions of slices costs more
than the distinction buys: splits are by patient anyway, and the manifest's series_id still
tells the scans apart. The consequence: a manifest row's study_id names the participant, and
the dataset's descriptor says so (units.study = "patient").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError, read_table, scan_tree
from readrace.ingest.adapters.generic import first_duplicate
from readrace.ingest.adapters.racemap import NOT_HISPANIC
from readrace.ingest.dicom import DicomHeader
from readrace.labels import HISPANIC

RACE_CODES: dict[int, str] = {1: "White", 2: "Black", 3: "Asian", 4: "Other", 5: "Other", 6: "Other", 7: "Unknown"}
ETHNIC_CODES: dict[int, str] = {1: HISPANIC, 2: NOT_HISPANIC}
GENDER_CODES: dict[int, str] = {1: "M", 2: "F"}


def _codes(values: pd.Series, mapping: dict[int, str]) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.map(lambda n: mapping.get(int(n), np.nan) if n == n else np.nan).astype(object)


class NlstAdapter(DatasetAdapter):
    """NLST CT series under the root, joined by DICOM PatientID to the participant table."""

    name = "nlst"

    def _participants_path(self) -> Path:
        return self.option_path("participants", what="the NLST participant CSV")

    def list_files(self) -> list[str]:
        table = self._participants_path()
        found = scan_tree(self.root)
        try:  # the participant table may sit in the root: it is not an input image
            own = table.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            own = None
        return [path for path in found if path != own]

    def study_table(self) -> pd.DataFrame:
        path = self._participants_path()
        table = read_table(path, ("pid", "race", "ethnic", "gender", "age"), dtype={"pid": str}, as_written=("age",))
        twice = first_duplicate(table["pid"])
        if twice:
            raise DatasetError(f"table {path}: pid {twice} appears twice")
        return pd.DataFrame(
            {
                "patient_key": table["pid"],
                "study_key": table["pid"],
                "race": _codes(table["race"], RACE_CODES),
                "ethnicity": _codes(table["ethnic"], ETHNIC_CODES),
                "sex": _codes(table["gender"], GENDER_CODES),
                "age": table["age"],  # as written: ingestion parses it
            }
        )

    def record_key(self, header: DicomHeader, path: str) -> tuple[str, str]:
        return header.patient_id, header.patient_id

    def units(self) -> dict[str, str]:
        return {"patient": "patient", "study": "patient"}  # the study key is the participant
