"""EMBED (Emory Breast Imaging Dataset): mammogram DICOMs, the clinical and metadata tables.

Options (paths relative to the root, or absolute):

- ``clinical`` (default "tables/EMBED_OpenData_clinical.csv"): empi_anon (patient), acc_anon
  (exam = study), tissueden (BI-RADS density 1-4 -> A-D), RACE_DESC, ETHNIC_GROUP_DESC,
  age_at_study, and GENDER_DESC when present. It has several rows per exam (one per finding
  and side): they are reduced to one per (empi_anon, acc_anon), keeping the densest
  tissueden; a patient whose rows name two races is excluded.
- ``metadata`` (default "tables/EMBED_OpenData_metadata.csv"): one row per DICOM file:
  empi_anon, acc_anon, anon_dicom_path, ViewPosition, ImageLateralityFinal.
- ``path_prefix`` (default "/mnt/NAS2/mammo/anon_dicom/"): stripped from anon_dicom_path to
  give the path under the root; a path without it is a DatasetError.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError, read_table
from readrace.ingest.adapters.generic import first_duplicate, listed_and_found
from readrace.ingest.adapters.racemap import map_demographics, patient_race
from readrace.labels import BREAST_DENSITY

_CLINICAL = ("empi_anon", "acc_anon", "tissueden", "RACE_DESC", "ETHNIC_GROUP_DESC", "age_at_study")
_METADATA = ("empi_anon", "acc_anon", "anon_dicom_path", "ViewPosition", "ImageLateralityFinal")
_KEYS = {"empi_anon": str, "acc_anon": str}
_CLINICAL_DEFAULT = "tables/EMBED_OpenData_clinical.csv"
_METADATA_DEFAULT = "tables/EMBED_OpenData_metadata.csv"


class EmbedAdapter(DatasetAdapter):
    """EMBED open data: one DICOM per metadata row, one study per exam (acc_anon)."""

    name = "embed"

    def _path(self, option: str, default: str) -> Path:
        return self.option_path(option, default)

    def _metadata(self) -> pd.DataFrame:
        path = self._path("metadata", _METADATA_DEFAULT)
        table = read_table(path, _METADATA, dtype={**_KEYS, "anon_dicom_path": str})
        prefix = self.options.get("path_prefix", "/mnt/NAS2/mammo/anon_dicom/")
        paths = table["anon_dicom_path"].astype(str)
        outside = ~paths.str.startswith(prefix)
        if outside.any():
            raise DatasetError(
                f"table {path}: anon_dicom_path {paths[outside].iloc[0]!r} does not start with the path_prefix {prefix!r}"
            )
        table["path"] = paths.str[len(prefix):].str.lstrip("/")
        twice = first_duplicate(table["path"])
        if twice:
            raise DatasetError(f"table {path}: {twice} is listed twice")
        return table

    def list_files(self) -> list[str]:
        return listed_and_found(self.root, self._metadata()["path"], self._path("metadata", _METADATA_DEFAULT))

    def study_table(self) -> pd.DataFrame:
        clinical = read_table(self._path("clinical", _CLINICAL_DEFAULT), _CLINICAL, dtype=_KEYS, as_written=("age_at_study",))
        sex = clinical["GENDER_DESC"] if "GENDER_DESC" in clinical else None
        mapped = map_demographics(clinical["RACE_DESC"], clinical["ETHNIC_GROUP_DESC"], sex)
        races = patient_race(clinical["empi_anon"], mapped["race"], mapped["ethnicity"])
        density = pd.to_numeric(clinical["tissueden"], errors="coerce")
        clinical = clinical.assign(density=density.where(density.isin([1, 2, 3, 4])), sex=mapped.get("sex", np.nan))
        studies = clinical.groupby(["empi_anon", "acc_anon"], sort=True).agg(
            density=("density", "max"), age=("age_at_study", "first"), sex=("sex", "first")
        ).reset_index()
        categories = dict(enumerate(BREAST_DENSITY, start=1))  # tissueden 1-4 -> A-D
        studies["breast_density"] = studies["density"].map(categories).astype(object)
        studies = studies.join(races, on="empi_anon")
        studies = studies.rename(columns={"empi_anon": "patient_key", "acc_anon": "study_key"})
        return studies[["patient_key", "study_key", "race", "ethnicity", "sex", "age", "exclusion", "breast_density"]]

    def file_table(self) -> pd.DataFrame:
        metadata = self._metadata()
        table = pd.DataFrame(
            {
                "patient_key": metadata["empi_anon"],
                "study_key": metadata["acc_anon"],
                "view": metadata["ViewPosition"],
                "laterality": metadata["ImageLateralityFinal"],
            }
        )
        table.index = pd.Index(metadata["path"], name="path")
        return table
