"""CheXpert (Stanford): JPEGs listed by train.csv / valid.csv, race from CHEXPERT DEMO.

Root is the dataset folder holding ``train.csv``, ``valid.csv`` and ``train/``, ``valid/``.
The tables' ``Path`` ("CheXpert-v1.0/train/patient00001/study1/view1_frontal.jpg") starts
with the option ``path_prefix`` (default "CheXpert-v1.0/"; "CheXpert-v1.0-small/" for the
small release), which is stripped to make it relative to the root. Patient "patient00001",
study "patient00001/study1". Sex and age come from the study's row (Sex, Age), else from the
demographics sheet (GENDER, AGE_AT_CXR); race from PRIMARY_RACE, Hispanic from ETHNICITY or
PRIMARY_RACE (readrace.ingest.adapters.racemap).

The demographics file (option ``demographics``, default "CHEXPERT DEMO.xlsx", relative to
the root or absolute) is read with pandas.read_excel (needs openpyxl) or, if it ends in
.csv, as a CSV export of the same sheet. Lateral views are excluded unless the option
``frontal_only`` is false.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError, non_frontal_exclusion, read_table
from readrace.ingest.adapters.generic import first_duplicate, listed_and_found
from readrace.ingest.adapters.racemap import map_demographics, map_sex
from readrace.labels import FINDINGS

_SPLITS = {"train": "train.csv", "valid": "valid.csv"}
_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *FINDINGS)
_DEMOGRAPHICS = ("PATIENT", "GENDER", "AGE_AT_CXR", "PRIMARY_RACE", "ETHNICITY")


def read_sheet(path: Path, required: tuple[str, ...], as_written: tuple[str, ...] = ()) -> pd.DataFrame:
    """An .xlsx sheet (pandas + openpyxl) or a CSV export of it, with its required columns
    (``as_written``: see readrace.ingest.adapters.read_table)."""
    if path.suffix.lower() not in (".xlsx", ".xls"):
        return read_table(path, required, as_written=as_written, dtype=str)
    try:
        import openpyxl  # noqa: F401  - only to give a clear message when it is absent
    except ImportError:
        raise DatasetError(
            f"cannot read {path}: reading .xlsx needs the openpyxl package; install it or export "
            "the sheet to CSV and point the 'demographics' option at the CSV"
        ) from None
    return read_table(path, required, reader=pd.read_excel, as_written=as_written, dtype=str)


class CheXpertAdapter(DatasetAdapter):
    """CheXpert-v1.0 (or -small) with the CHEXPERT DEMO demographics sheet."""

    name = "chexpert"

    def _images(self) -> pd.DataFrame:
        """train.csv and valid.csv, one row per image, with relative path, keys and split."""
        prefix = self.options.get("path_prefix", "CheXpert-v1.0/")
        tables = []
        for split, name in _SPLITS.items():
            table = read_table(self.root / name, _COLUMNS, as_written=("Age", *FINDINGS))
            paths = table["Path"].astype(str)
            if prefix:
                paths = paths.where(~paths.str.startswith(prefix), paths.str[len(prefix):])
            parts = paths.str.split("/")
            if not (parts.str.len() >= 4).all():
                bad = paths[parts.str.len() < 4].iloc[0]
                raise DatasetError(f"table {self.root / name}: Path {bad!r} is not split/patient/study/file")
            table["path"] = paths
            table["patient_key"] = parts.str[1]
            table["study_key"] = parts.str[1] + "/" + parts.str[2]
            table["official_split"] = split
            table["table"] = name
            tables.append(table)
        images = pd.concat(tables, ignore_index=True)
        twice = first_duplicate(images["path"])
        if twice:
            raise DatasetError(f"{self.name}: {twice} is listed twice in train.csv/valid.csv")
        return images

    def _demographics_path(self) -> Path:
        return self.option_path("demographics", "CHEXPERT DEMO.xlsx")

    def list_files(self) -> list[str]:
        return listed_and_found(self.root, self._images()["path"], "train.csv/valid.csv")

    def study_table(self) -> pd.DataFrame:
        images = self._images()
        studies = images.groupby("study_key", sort=True).first().reset_index()
        demo = read_sheet(self._demographics_path(), _DEMOGRAPHICS, as_written=("AGE_AT_CXR",))
        demo["PATIENT"] = demo["PATIENT"].str.strip()
        twice = first_duplicate(demo["PATIENT"])
        if twice:
            raise DatasetError(f"table {self._demographics_path()}: patient {twice} appears twice")
        mapped = map_demographics(demo["PRIMARY_RACE"], demo["ETHNICITY"], demo["GENDER"])
        mapped["AGE_AT_CXR"] = demo["AGE_AT_CXR"].to_numpy(dtype=object)
        mapped.index = demo["PATIENT"]
        studies = studies.join(mapped.rename(columns={"sex": "demo_sex"}), on="patient_key")
        sex = studies["Sex"].map(map_sex)
        studies["sex"] = sex.where(sex.notna(), studies["demo_sex"]).astype(object)
        # Ages and labels as written (ingestion parses them): the study's Age, else the sheet's.
        age = studies["Age"].astype(object)
        studies["age"] = age.where(age.notna(), studies["AGE_AT_CXR"].astype(object))
        keep = ["patient_key", "study_key", "race", "ethnicity", "sex", "age", *FINDINGS]
        return studies[keep]

    def file_table(self) -> pd.DataFrame:
        images = self._images()
        frontal = images["Frontal/Lateral"].astype(str).str.strip().str.lower() == "frontal"
        view = images["AP/PA"].where(images["AP/PA"].notna() & frontal, images["Frontal/Lateral"])
        exclusion = pd.Series(np.nan, index=images.index, dtype=object)
        detail = pd.Series("", index=images.index, dtype=object)
        if self.options.get("frontal_only", True):
            exclusion[~frontal], detail[~frontal] = non_frontal_exclusion(images["Frontal/Lateral"][~frontal])
        table = pd.DataFrame(
            {
                "patient_key": images["patient_key"],
                "study_key": images["study_key"],
                "view": view.astype(object).str.upper(),
                "official_split": images["official_split"],
                "exclusion": exclusion,
                "exclusion_detail": detail,
            }
        )
        table.index = pd.Index(images["path"], name="path")
        return table
