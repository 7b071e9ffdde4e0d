"""Dataset adapters: how one dataset's files and tables are read.

An adapter knows a dataset's layout and its own keys; ingestion (readrace.ingest) knows
nothing of any particular dataset. Each adapter gives:

- the list of input files under its root (the listing stage runs once, as a job, never
  while the Snakefile is parsed);
- a study table: one row per (patient_key, study_key) with self-reported race, ethnicity,
  sex, age and whatever else the dataset records (BMI, finding labels, breast density), in
  the column names of :data:`STUDY_TABLE_COLUMNS`, and optionally an ``exclusion`` column
  (a quarantine reason, such as conflicting race records) that overrides the race rules;
- optionally a file table: what the tables know of each file (keys, view, an exclusion);
- how a decoded file maps to its (patient_key, study_key) when the file table does not say;
- what its keys really identify (:meth:`DatasetAdapter.units`);
- optionally the ground-truth lung mask of a file (:meth:`DatasetAdapter.lung_mask`).

Numeric values (age, BMI, finding labels) are passed as the tables write them: ingestion
parses them in one place (readrace.ingest.values) and counts the invalid ones. Exclusion
reasons are public (they reach results/): only fixed text and safe values, with any raw
value in ``exclusion_detail``, which only the private quarantine list receives.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.io.parsers.readers import STR_NA_VALUES  # the readers' default missing-value texts

from readrace.data.cache import DEFAULT_UNITS
from readrace.ingest.dicom import DicomHeader
from readrace.ingest.reasons import known_view

#: Columns every study table has (further optional columns: bmi, breast_density, findings).
STUDY_TABLE_COLUMNS: tuple[str, ...] = ("patient_key", "study_key", "race", "ethnicity", "sex", "age")


class DatasetError(ValueError):
    """A dataset's root, files or tables are not what its adapter expects."""


class DatasetAdapter(ABC):
    """Base class of the adapters; ``root`` is the dataset's folder."""

    name: str = ""

    def __init__(self, root: str | Path, options: dict[str, Any]):
        self.root = Path(root)
        self.options = options
        if not self.root.is_dir():
            raise DatasetError(f"{self.name}: dataset root {self.root} is not a folder")

    def option_path(self, option: str, default: str | None = None, what: str = "a file") -> Path:
        """The file an option names, relative to the root unless absolute; an option with no
        default that is not set is a DatasetError saying ``what`` it should name."""
        value = self.options.get(option, default)
        if not value:
            raise DatasetError(f"{self.name}: the option '{option}' ({what}) is required")
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def files(self) -> list[str]:
        """The dataset's input files relative to the root: the ``file_list`` option when set
        (a text file, one path per line, relative to the root or absolute under it),
        otherwise what the adapter finds under its root."""
        file_list = self.options.get("file_list")
        if not file_list:
            return self.list_files()
        listed = Path(file_list)
        if not listed.is_file():
            raise DatasetError(f"{self.name}: file_list {listed} does not exist")
        paths = []
        for number, line in enumerate(listed.read_text().splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path = Path(line)
            if path.is_absolute():
                try:
                    path = path.relative_to(self.root)
                except ValueError:
                    raise DatasetError(f"{listed}, line {number}: {line} is not under the dataset root {self.root}") from None
            paths.append(str(path))
        if len(set(paths)) != len(paths):
            raise DatasetError(f"{listed}: a file is listed twice")
        return paths

    @abstractmethod
    def list_files(self) -> list[str]:
        """Input files found under the root, as paths relative to it, sorted."""

    @abstractmethod
    def study_table(self) -> pd.DataFrame:
        """One row per (patient_key, study_key), with at least STUDY_TABLE_COLUMNS."""

    def file_table(self) -> pd.DataFrame | None:
        """Per-file facts the dataset's tables know, indexed by the relative path: any of
        ``patient_key``, ``study_key``, ``view``, ``laterality``, ``exclusion`` (a public
        quarantine reason, e.g. "excluded: non-frontal view (LATERAL)") and
        ``exclusion_detail`` (its private detail). None when the files' headers say it all."""
        return None

    def record_key(self, header: DicomHeader, path: str) -> tuple[str, str]:
        """The (patient_key, study_key) of a decoded file: DICOM PatientID and StudyInstanceUID."""
        return header.patient_id, header.study_uid

    def lung_mask(self, path: str) -> np.ndarray | None:
        """The dataset's ground-truth lung mask of the file at ``path`` (relative to the
        root), on the file's native grid: ``(H, W)``, or ``(frames, H, W)`` for a
        multi-frame file, nonzero = lung; None when the dataset has none for it. By
        default from the option ``lung_masks`` (a public mask set's layout:
        readrace.ingest.masksets), else None. Read by the truth-mask job
        (readrace.segmentation.truth), never by the shards."""
        if not self.options.get("lung_masks"):
            return None
        if not hasattr(self, "_lung_mask_reader"):
            from readrace.ingest.masksets import mask_reader

            self._lung_mask_reader = mask_reader(self.root, self.options["lung_masks"])
        return self._lung_mask_reader(path)

    def units(self) -> dict[str, str]:
        """What the keys of the study table really identify, for the dataset's descriptor:
        ``{"patient": ..., "study": ...}``, each "patient" or "study". By default each key is
        what it is called; an adapter whose study key is the patient (NLST), or whose
        patient key is a study (RSPECT without patient ids), says so."""
        return dict(DEFAULT_UNITS)


def scan_tree(root: Path) -> list[str]:
    """Every regular file under ``root``, relative and sorted; nothing is filtered out, so
    whatever is not an image still reaches the quarantine list with its reason."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in files:
            found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def read_table(
    path: Path,
    required: tuple[str, ...],
    reader: Callable[..., pd.DataFrame] = pd.read_csv,
    as_written: tuple[str, ...] = (),
    **kwargs: Any,
) -> pd.DataFrame:
    """Read a table (CSV by default, or with ``reader``: pd.read_excel), failing with the
    file's name and the missing columns.

    The columns named in ``as_written`` (those present) keep their cells as the text written,
    only an empty cell being missing: a reader would otherwise turn "n/a" or "NA" into a
    missing value before ingestion could count it as invalid (readrace.ingest.values).
    """
    if not path.is_file():
        raise DatasetError(f"missing table {path}")
    try:
        if as_written:
            kwargs = _as_written_options(path, reader, as_written, kwargs)
        table = reader(path, **kwargs)
    except Exception as error:  # any parser failure is reported against the file
        raise DatasetError(f"cannot read table {path}: {error}") from error
    missing = [column for column in required if column not in table]
    if missing:
        raise DatasetError(f"table {path} lacks column(s) {', '.join(missing)}")
    return table


def _as_written_options(
    path: Path, reader: Callable[..., pd.DataFrame], as_written: tuple[str, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Reader options under which ``as_written`` columns are text with only "" missing, and
    every other column reads as by default (the header is read first to name them)."""
    columns = list(reader(path, nrows=0, **kwargs).columns)
    raw = [column for column in columns if column in as_written]
    dtype = kwargs.get("dtype")
    if dtype is None or isinstance(dtype, dict):
        dtype = {**(dtype or {}), **dict.fromkeys(raw, str)}
    defaults = sorted(STR_NA_VALUES)
    na_values = {column: ([""] if column in raw else defaults) for column in columns}
    return {**kwargs, "dtype": dtype, "keep_default_na": False, "na_values": na_values}


def non_frontal_exclusion(views: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Public exclusion reasons and private details for images of views that are not kept:
    "excluded: non-frontal view (LATERAL)" when the value is a known view term,
    "(none recorded)" when missing, else "(unrecognised value)" with the value in the detail."""
    named = views.map(known_view)
    missing = views.isna() | (views.astype(object).astype(str).str.strip() == "")
    shown = named.where(named.notna(), np.where(missing, "none recorded", "unrecognised value"))
    reasons = "excluded: non-frontal view (" + shown.astype(str) + ")"
    details = pd.Series("", index=views.index, dtype=object)
    unknown = named.isna() & ~missing
    details[unknown] = "view " + views[unknown].map(repr)
    return reasons.astype(object), details


def make_adapter(name: str, root: str | Path, options: dict[str, Any]) -> DatasetAdapter:
    """The adapter called ``name`` on the dataset at ``root``."""
    from readrace.ingest.adapters.chexpert import CheXpertAdapter
    from readrace.ingest.adapters.embed import EmbedAdapter
    from readrace.ingest.adapters.generic import GenericAdapter
    from readrace.ingest.adapters.hand_atlas import HandAtlasAdapter
    from readrace.ingest.adapters.mask_sets import JsrtAdapter, MontgomeryAdapter, ShenzhenAdapter
    from readrace.ingest.adapters.mimic import MimicCxrAdapter
    from readrace.ingest.adapters.nlst import NlstAdapter
    from readrace.ingest.adapters.rspect import RspectAdapter
    from readrace.ingest.adapters.synthetic import SyntheticAdapter

    registry: dict[str, type[DatasetAdapter]] = {
        "synthetic": SyntheticAdapter,
        "generic": GenericAdapter,
        "chexpert": CheXpertAdapter,
        "mimic_cxr": MimicCxrAdapter,
        "hand_atlas": HandAtlasAdapter,
        "embed": EmbedAdapter,
        "rspect": RspectAdapter,
        "nlst": NlstAdapter,
        "montgomery": MontgomeryAdapter,
        "shenzhen": ShenzhenAdapter,
        "jsrt": JsrtAdapter,
    }
    if name not in registry:
        raise DatasetError(f"unknown adapter {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name](root, options)
