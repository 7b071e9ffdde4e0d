"""A private dataset described by one CSV manifest; also the listing helpers other adapters share.

The manifest (option ``manifest``, relative to the root or absolute) has one row per image:

    path, patient, study, race, sex, age     required
    ethnicity, bmi, breast_density, view,
    laterality, the 14 CheXpert findings     optional, kept when present

``path`` is relative to the dataset root. Age, BMI and findings are passed as written (ingestion
parses them and counts the invalid ones). Race values go through readrace.ingest.adapters.racemap
(option ``race_map``, a dict from the hospital's own values to Asian/Black/White/Other/
Unknown, is tried first). Study-level values (race, sex, age, ...) are taken from a study's
first row; a patient whose rows map to two different races is excluded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError, read_table, scan_tree
from readrace.ingest.adapters.racemap import check_overrides, map_demographics, patient_race
from readrace.labels import FINDINGS

_REQUIRED = ("path", "patient", "study", "race", "sex", "age")
_STUDY_EXTRAS = ("bmi", "breast_density", *FINDINGS)
_FILE_EXTRAS = ("view", "laterality")


def listed_and_found(root: Path, listed: Iterable[str], table: str | Path) -> list[str]:
    """The files a dataset's table lists, checked on disk, plus the unlisted files found
    beside them (so that ingestion quarantines those as having no demographics record).

    The folders scanned are the top-level folders of the listed paths; listed files at the
    root itself are checked one by one. A listed file that is missing is a DatasetError
    naming the file and the table.
    """
    listed = sorted(set(listed))
    tops = sorted({path.split("/", 1)[0] for path in listed if "/" in path})
    found: set[str] = set()
    for top in tops:
        if (root / top).is_dir():
            found.update(f"{top}/{path}" for path in scan_tree(root / top))
    missing = [path for path in listed if path not in found and not ("/" not in path and (root / path).is_file())]
    if missing:
        raise DatasetError(
            f"{len(missing)} file(s) listed in {table} are missing under {root}, e.g. {', '.join(missing[:3])}"
        )
    return sorted(found | set(listed))


def first_duplicate(values: pd.Series) -> str | None:
    """The first value that occurs twice, for error messages; None when all are distinct."""
    duplicated = values[values.duplicated()]
    return str(duplicated.iloc[0]) if len(duplicated) else None


def relative_path(root: Path, value: str) -> str:
    """A manifest path as a path relative to the root (absolute paths must lie under it)."""
    path = Path(str(value))
    if path.is_absolute():
        try:
            path = path.relative_to(root)
        except ValueError:
            raise DatasetError(f"path {value} is not under the dataset root {root}") from None
    return path.as_posix()


class GenericAdapter(DatasetAdapter):
    """Images anywhere under the root, described by a CSV manifest of the hospital's values."""

    name = "generic"

    def __init__(self, root, options):
        super().__init__(root, options)
        self.race_map = check_overrides(options.get("race_map"), f"{self.name} dataset {self.root}")

    def _manifest_path(self) -> Path:
        return self.option_path("manifest", what="a CSV file")

    def _table(self) -> pd.DataFrame:
        path = self._manifest_path()
        table = read_table(
            path, _REQUIRED, dtype={"path": str, "patient": str, "study": str}, as_written=("age", *_STUDY_EXTRAS)
        )
        table["path"] = [relative_path(self.root, value) for value in table["path"]]
        twice = first_duplicate(table["path"])
        if twice:
            raise DatasetError(f"manifest {path} lists {twice} twice")
        if table[["patient", "study"]].isna().any().any():
            raise DatasetError(f"manifest {path} has rows without patient or study")
        return table

    def list_files(self) -> list[str]:
        return listed_and_found(self.root, self._table()["path"], self._manifest_path())

    def study_table(self) -> pd.DataFrame:
        table = self._table()
        ethnicity = table["ethnicity"] if "ethnicity" in table else None
        mapped = map_demographics(table["race"], ethnicity, table["sex"], self.race_map)
        per_patient = patient_race(table["patient"], mapped["race"], mapped["ethnicity"])
        studies = table.assign(sex=mapped["sex"]).groupby(["patient", "study"], sort=True).first().reset_index()
        studies = studies.drop(columns=["race", "ethnicity"], errors="ignore")
        studies = studies.join(per_patient, on="patient")
        studies = studies.rename(columns={"patient": "patient_key", "study": "study_key"})
        keep = ["patient_key", "study_key", "race", "ethnicity", "sex", "age", "exclusion"]
        keep += [column for column in _STUDY_EXTRAS if column in studies]
        return studies[keep].reset_index(drop=True)

    def file_table(self) -> pd.DataFrame:
        table = self._table().rename(columns={"patient": "patient_key", "study": "study_key"})
        keep = ["patient_key", "study_key", *[column for column in _FILE_EXTRAS if column in table]]
        return table.set_index("path")[keep].rename_axis("path")
