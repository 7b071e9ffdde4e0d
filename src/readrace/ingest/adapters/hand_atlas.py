"""The Digital Hand Atlas: race, sex and age group read from the folder names.

Accepted layouts (codes case-insensitive; files of any image type):

- root/ASI/F/07/xxx.jpg      race, sex and age group as three consecutive folders
- root/ASIF07/xxx.dcm        one folder with the three codes run together
- root/ASI/ASIF07/xxx.dcm    (and root/ASIF/ASIF07/...): any folder of that form counts

Race codes: ASI Asian, BLK Black, CAU White (Caucasian), HIS Hispanic (race Unknown, ethnicity
Hispanic or Latino, so excluded as in the paper). Sex F or M. The age group is the number of
years (0-19). A path where no folder says all three, or where two folders disagree, is
excluded with "excluded: cannot read race/sex/age from the path". One image per patient:
patient = study = the file stem (a stem found twice is a DatasetError).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError, scan_tree
from readrace.labels import HISPANIC

UNPARSEABLE = "excluded: cannot read race/sex/age from the path"
_RACES = {"ASI": ("Asian", np.nan), "BLK": ("Black", np.nan), "CAU": ("White", np.nan), "HIS": ("Unknown", HISPANIC)}
_JOINED = re.compile(r"^(ASI|BLK|CAU|HIS)(F|M)(\d{1,2})$", re.IGNORECASE)
_SPLIT = re.compile(r"(?:^|/)(ASI|BLK|CAU|HIS)/(F|M)/(\d{1,2})(?=/)", re.IGNORECASE)


def parse_path(path: str) -> tuple[str, str, int] | None:
    """(race code, sex, age group) from a relative path's folders, or None if unreadable."""
    folders = PurePosixPath(path).parent.as_posix()
    found = {(m[0].upper(), m[1].upper(), int(m[2])) for m in _SPLIT.findall(folders + "/")}
    for folder in PurePosixPath(folders).parts:
        match = _JOINED.match(folder)
        if match:
            found.add((match[1].upper(), match[2].upper(), int(match[3])))
    return found.pop() if len(found) == 1 else None


class HandAtlasAdapter(DatasetAdapter):
    """The Digital Hand Atlas (hand radiographs of children, by race, sex and age group)."""

    name = "hand_atlas"

    def list_files(self) -> list[str]:
        return scan_tree(self.root)

    def _parsed(self) -> pd.DataFrame:
        rows = []
        for path in self.files():
            parsed = parse_path(path)
            row = {"path": path, "patient_key": PurePosixPath(path).stem}
            if parsed is None:
                row["exclusion"] = UNPARSEABLE
            else:
                code, sex, age = parsed
                race, ethnicity = _RACES[code]
                row.update(race=race, ethnicity=ethnicity, sex=sex, age=float(age), exclusion=np.nan)
            rows.append(row)
        table = pd.DataFrame(rows, columns=["path", "patient_key", "race", "ethnicity", "sex", "age", "exclusion"])
        duplicated = table["patient_key"].duplicated(keep=False)
        if duplicated.any():
            paths = table["path"][duplicated].tolist()
            stem = table["patient_key"][duplicated].iloc[0]
            raise DatasetError(f"{self.name}: the file stem {stem!r} names more than one file ({', '.join(paths[:3])})")
        return table.astype({"race": object, "ethnicity": object, "sex": object, "exclusion": object})

    def study_table(self) -> pd.DataFrame:
        table = self._parsed()
        table = table[table["exclusion"].isna()].assign(study_key=lambda t: t["patient_key"])
        return table[["patient_key", "study_key", "race", "ethnicity", "sex", "age"]].reset_index(drop=True)

    def file_table(self) -> pd.DataFrame:
        table = self._parsed()
        table["study_key"] = table["patient_key"]
        return table.set_index("path")[["patient_key", "study_key", "exclusion"]]
