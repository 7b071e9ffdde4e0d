"""The public lung-mask sets as their providers ship them: Montgomery, Shenzhen and JSRT.

They record no self-reported race: their datasets are mask sets (``mask_set: true``,
readrace.experiments.segmentation), whose images ingestion keeps with race missing, for the
radiograph U-Net to train on. One image per patient: patient = study = the image's file stem
(a stem found twice is a DatasetError). The images are the files directly in the image
folder (option ``images``, relative to the root); whatever else lies there reaches the
quarantine list with its reason. The ground-truth masks are read in the set's own layout
(readrace.ingest.masksets) unless the option ``lung_masks`` names another.

``montgomery``
    MontgomerySet: ``CXR_png/MCUCXR_0001_0.png``, ``ManualMask/leftMask/``, ``rightMask/``,
    ``ClinicalReadings/MCUCXR_0001_0.txt`` ("Patient's Sex: M", "Patient's Age: 058Y").
``shenzhen``
    ChinaSet_AllFiles: ``CXR_png/CHNCXR_0001_0.png``, ``mask/CHNCXR_0001_0_mask.png`` (566
    of the 662 images), ``ClinicalReadings/CHNCXR_0001_0.txt`` ("male 35yrs", "Female, 45yr").
``jsrt``
    The JSRT database's raw 2048 x 2048 12-bit ``.IMG`` files (readrace.ingest.raster.read_jsrt)
    in the root, with the SCR masks (``scr/masks/left lung/JPCLN001.gif``, ``right lung/``).
    Sex and age are not read (JSRT keeps them in separate clinical tables).

A clinical reading that is missing, or says no sex or age, leaves that value missing; the
readings say nothing of race.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError

#: Each set's image folder, clinical-readings folder (None: not read) and mask layout.
SETS: dict[str, tuple[str, str | None, str]] = {
    "montgomery": ("CXR_png", "ClinicalReadings", "montgomery"),
    "shenzhen": ("CXR_png", "ClinicalReadings", "shenzhen"),
    "jsrt": ("", None, "scr"),
}
_SEX = (re.compile(r"sex\W*([MF])\b", re.IGNORECASE), re.compile(r"\b(female|male)\b", re.IGNORECASE))
_AGE = (re.compile(r"age\W*0*(\d{1,3})\s*Y", re.IGNORECASE), re.compile(r"\b0*(\d{1,3})\s*(?:yrs?|years?|y)\b", re.IGNORECASE))


def parse_reading(text: str) -> tuple[str | None, str | None]:
    """(sex F/M, age in years as written) from a Montgomery or Shenzhen clinical reading;
    None for what it does not say."""
    sex = age = None
    for pattern in _SEX:
        match = pattern.search(text)
        if match:
            sex = match[1][0].upper()
            break
    for pattern in _AGE:
        match = pattern.search(text)
        if match:
            age = match[1]
            break
    return sex, age


class MaskSetAdapter(DatasetAdapter):
    """One public lung-mask set (module doc); ``name`` selects its layout."""

    def __init__(self, root, options):
        super().__init__(root, options)
        images, clinical, self.layout = SETS[self.name]
        self.images = self.options.get("images", images).strip("/")
        self.clinical = self.options.get("clinical", clinical)
        if not (self.root / self.images).is_dir():
            raise DatasetError(f"{self.name}: image folder {self.root / self.images} is not a folder "
                               f"(option images)")

    def list_files(self) -> list[str]:
        folder = self.root / self.images
        return sorted(PurePosixPath(self.images, path.name).as_posix() for path in folder.iterdir() if path.is_file())

    def _patients(self) -> pd.Series:
        """Relative path -> patient key (the file stem), for every file."""
        files = pd.Series(self.files(), dtype=object)
        stems = files.map(lambda path: PurePosixPath(path).stem)
        twice = stems[stems.duplicated(keep=False)]
        if len(twice):
            raise DatasetError(f"{self.name}: the file stem {twice.iloc[0]!r} names more than one file "
                               f"({', '.join(files[twice.index].tolist()[:3])})")
        return pd.Series(stems.to_numpy(), index=files.to_numpy())

    def _reading(self, stem: str) -> tuple[str | None, str | None]:
        if self.clinical is None:
            return None, None
        path = self.root / self.clinical / f"{stem}.txt"
        return parse_reading(path.read_text(errors="replace")) if path.is_file() else (None, None)

    def study_table(self) -> pd.DataFrame:
        rows = []
        for stem in self._patients():
            sex, age = self._reading(stem)
            rows.append({"patient_key": stem, "study_key": stem, "race": np.nan, "ethnicity": np.nan,
                         "sex": sex, "age": age})
        columns = ["patient_key", "study_key", "race", "ethnicity", "sex", "age"]
        return pd.DataFrame(rows, columns=columns).astype(object)

    def file_table(self) -> pd.DataFrame:
        patients = self._patients()
        return pd.DataFrame({"patient_key": patients, "study_key": patients}).rename_axis("path")

    def lung_mask(self, path: str) -> np.ndarray | None:
        if not hasattr(self, "_lung_mask_reader"):
            from readrace.ingest.masksets import mask_reader

            option = self.options.get("lung_masks") or {"layout": self.layout}
            self._lung_mask_reader = mask_reader(self.root, option)
        return self._lung_mask_reader(path)


class MontgomeryAdapter(MaskSetAdapter):
    name = "montgomery"


class ShenzhenAdapter(MaskSetAdapter):
    name = "shenzhen"


class JsrtAdapter(MaskSetAdapter):
    name = "jsrt"
