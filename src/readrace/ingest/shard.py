"""One ingestion shard: decode each file once, join the dataset's tables, apply the cohort
exclusions, order CT slices and preprocess the pixels for the cache.

Every file ends as rows of the shard's manifest or as one row of its quarantine (file_id,
reason, detail, patient_id). Dataset ids (DICOM PatientID, UIDs) and source paths are used to
join tables and then replaced by keyed hashes (readrace.data.pseudonym); no PHI header is ever
read, so none can be written. Reasons come in two parts (readrace.ingest.reasons): the public
phrase, and a private detail (library messages, header values, tracebacks) that only the
private quarantine list (private/{dataset}/quarantine.csv) receives; the log names a file by
its file_id only.

The shard's rows carry, besides the manifest's columns, the ``file_id`` of their file (the
gather job's accounting and the private map back to the source) and ``invalid_values``
(the numeric columns whose values were invalid, ";"-separated; readrace.ingest.values).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from readrace.data.manifest import MANIFEST_COLUMNS
from readrace.data.pseudonym import file_id, pseudonymize
from readrace.ingest.adapters import DatasetAdapter, DatasetError
from readrace.ingest.dicom import DicomHeader, DicomImage, DicomReadError, order_ct_slices, read_dicom
from readrace.ingest.preprocess import CACHE_DTYPE, cache_pixels
from readrace.ingest.raster import RASTER_SUFFIXES, read_raster
from readrace.ingest.reasons import DICOM_MODALITIES, known_term, traceback_detail
from readrace.ingest.values import NUMERIC_COLUMNS, Range, parse_values
from readrace.labels import UNMAPPED_RACE, exclusion_reason

log = logging.getLogger(__name__)

#: DICOM Modality values accepted in a dataset of each task modality.
ACCEPTED_DICOM_MODALITIES: dict[str, frozenset[str]] = {
    "cxr": frozenset({"CR", "DX"}),
    "ct": frozenset({"CT"}),
    "mammo": frozenset({"MG"}),
    "xr": frozenset({"CR", "DX", "RF", "XA"}),
}

#: Columns of a shard's quarantine (private: ``detail`` may quote paths and header values).
QUARANTINE_COLUMNS = ("file_id", "reason", "detail", "patient_id")
#: Columns of a shard's rows beyond the manifest's (dropped by the gather job).
SHARD_EXTRA_COLUMNS = ("file_id", "invalid_values")
SHARD_ROW_COLUMNS: tuple[str, ...] = (
    *(c for c in MANIFEST_COLUMNS if c not in ("split", "cache_index")),
    *SHARD_EXTRA_COLUMNS,
)
#: The public reason of a file whose processing raised what no rule foresaw.
UNEXPECTED_ERROR = "unexpected error"


class Rejected(Exception):
    """A file that does not enter the cohort. ``reason`` (public: fixed text and safe values
    only) goes to the quarantine with the (pseudonymous) patient when it is known, for the
    dataset's summary; ``detail`` (an unknown header value, say) only to the private list."""

    def __init__(self, reason: str, patient_id: str = "", detail: str = ""):
        super().__init__(reason, patient_id, detail)
        self.reason = reason
        self.patient_id = patient_id
        self.detail = detail

    def __str__(self) -> str:
        return self.reason


@dataclass
class ShardResult:
    """What one ingestion job produces.

    ``rows``: :data:`SHARD_ROW_COLUMNS` (the manifest's columns but split and cache_index,
    plus file_id and invalid_values); ``quarantine``: :data:`QUARANTINE_COLUMNS`, one row
    per file that is not in ``rows``; ``images``: (len(rows), size, size) as CACHE_DTYPE,
    row i of ``rows`` is ``images[i]``.
    """

    rows: pd.DataFrame
    quarantine: pd.DataFrame
    images: np.ndarray


@dataclass
class _Accepted:
    path: str
    file_id: str
    header: DicomHeader
    record: dict[str, Any]
    pixels: np.ndarray  # (n_frames, size, size); released once copied into the shard's array
    reduction: int  # readrace.ingest.dicom.DicomImage.reduction


@dataclass
class _ShardState:
    accepted: list[_Accepted] = field(default_factory=list)
    quarantine: list[tuple[str, str, str, str]] = field(default_factory=list)  # QUARANTINE_COLUMNS

    def reject(self, fid: str, reason: str, detail: str = "", patient_id: str = "") -> None:
        self.quarantine.append((fid, reason, detail, patient_id))


def _study_lookup(adapter: DatasetAdapter) -> dict[tuple[str, str], dict[str, Any]]:
    table = adapter.study_table()
    keys = table["patient_key"].astype(str) + "\x1f" + table["study_key"].astype(str)
    duplicated = keys[keys.duplicated()]
    if len(duplicated):
        raise DatasetError(
            f"{adapter.name}: the study table has {len(duplicated)} duplicated (patient, study) key(s)"
        )
    records = table.to_dict(orient="records")
    return {(str(r["patient_key"]), str(r["study_key"])): r for r in records}


def read_image(path: Path, min_size: int | None = None) -> DicomImage:
    """A DICOM file, or a JPEG / PNG file (by its suffix); ``min_size`` allows a reduced
    resolution decode (readrace.ingest.codecs)."""
    if path.suffix.lower() in RASTER_SUFFIXES:
        return read_raster(path, min_size)
    return read_dicom(path, min_size)


def decode_size(preprocess: Mapping[str, Any]) -> int | None:
    """The smallest side a decode may reduce an image to: twice the cache size, so that the
    antialiased resize keeps a factor 2 of margin; None with ``reduced_decoding: false``."""
    if not preprocess.get("reduced_decoding", True):
        return None
    return 2 * int(preprocess["size"])


def _file_lookup(adapter: DatasetAdapter) -> dict[str, dict[str, Any]]:
    table = adapter.file_table()
    if table is None:
        return {}
    records = table.reset_index(names="path").to_dict(orient="records")
    return {str(r["path"]): {k: v for k, v in r.items() if not _missing(v)} for r in records}


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def _decode_and_check(
    path: str,
    fid: str,
    adapter: DatasetAdapter,
    modality: str,
    studies: dict[tuple[str, str], dict[str, Any]],
    files: dict[str, dict[str, Any]],
    preprocess: dict[str, Any],
    salt: str,
    mask_set: bool = False,
) -> _Accepted:
    """Decode one file and decide whether it enters the cohort; the exception says why not.
    A mask set's images enter without race (recorded as missing)."""
    known = files.get(path, {})
    patient = pseudonymize(str(known["patient_key"]), salt, "patient") if "patient_key" in known else ""
    if "exclusion" in known:  # decided by the tables (a lateral view, say): no need to decode
        raise Rejected(str(known["exclusion"]), patient, str(known.get("exclusion_detail", "")))
    image = read_image(adapter.root / path, decode_size(preprocess))
    header = image.header
    accepted = ACCEPTED_DICOM_MODALITIES[modality]
    if header.modality and header.modality not in accepted:
        # The header's value is named only when it is a DICOM defined term: a free-text
        # Modality could be anything, an MRN included.
        named = known_term(header.modality, DICOM_MODALITIES)
        raise Rejected(
            f"wrong modality: DICOM Modality {named or '(not a defined term)'} is not one of "
            f"{'/'.join(sorted(accepted))} expected in a {modality} dataset",
            detail="" if named else f"Modality {header.modality!r}",
        )
    header_patient, header_study = adapter.record_key(header, path)
    patient_key = known.get("patient_key", header_patient)
    study_key = known.get("study_key", header_study)
    if not patient_key or not study_key:
        raise Rejected("no patient or study id in the file or the dataset's tables")
    patient = pseudonymize(str(patient_key), salt, "patient")
    record = studies.get((str(patient_key), str(study_key)))
    if record is None:
        raise Rejected("no demographics record: its patient and study are not in the dataset's tables", patient)
    excluded = record.get("exclusion") if not _missing(record.get("exclusion")) else None
    if mask_set:  # the race rules do not apply: the set records none, and none is kept
        record = {**record, "race": None, "ethnicity": None}
    else:
        excluded = excluded or exclusion_reason(record.get("race"), record.get("ethnicity"))
    if excluded:
        detail = f"race value {record.get('race')!r}" if excluded == UNMAPPED_RACE else ""
        raise Rejected(str(excluded), patient, detail)
    pixels = cache_pixels(image, preprocess["size"], preprocess.get("window"))
    record = {**record, "view": known.get("view"), "laterality": known.get("laterality")}
    return _Accepted(path, fid, header, record, pixels, image.reduction)


def _row(
    item: _Accepted, frame: int, slice_index: int | None, modality: str, salt: str, ranges: Mapping[str, Range]
) -> dict[str, Any]:
    header, record = item.header, item.record
    row: dict[str, Any] = {
        "patient_id": pseudonymize(str(record["patient_key"]), salt, "patient"),
        "study_id": pseudonymize(str(record["study_key"]), salt, "study"),
        "series_id": pseudonymize(header.series_uid or f"{item.path}", salt, "series"),
        "image_id": pseudonymize(f"{header.sop_uid or item.path}#{frame}", salt, "image"),
        "modality": modality,
        "dicom_modality": header.modality or None,
        "view": "AXIAL" if modality == "ct" else (record.get("view") or header.view_position or None),
        "laterality": record.get("laterality") or header.laterality or None,
        "race": record["race"],
        "sex": record.get("sex"),
        "breast_density": record.get("breast_density"),
        "bmi_source": record.get("bmi_source") if isinstance(record.get("bmi_source"), str) else None,
        "manufacturer": header.manufacturer or None,
        "slice_index": slice_index,
        "frame": frame,
        "file_id": item.file_id,
    }
    values, invalid = parse_values(record, ranges)
    row.update(values)
    row["invalid_values"] = ";".join(invalid)
    return row


def _order_ct(items: list[_Accepted], state: _ShardState) -> list[tuple[_Accepted, list[int | None]]]:
    """Group CT files by series and give each frame its slice index along the slice normal."""
    by_series: dict[str, list[_Accepted]] = defaultdict(list)
    for item in items:
        by_series[item.header.series_uid or item.path].append(item)
    ordered: list[tuple[_Accepted, list[int | None]]] = []
    for series in by_series.values():
        if len(series) == 1:
            item = series[0]
            ordered.append((item, list(range(item.pixels.shape[0]))))
            continue
        try:
            order = order_ct_slices([item.header for item in series])
        except DicomReadError as error:
            for item in series:
                state.reject(item.file_id, f"CT series not ordered: {error.reason}", error.detail)
            continue
        for position, index in enumerate(order):
            ordered.append((series[index], [position]))
    return ordered


def ingest_shard(
    adapter: DatasetAdapter,
    paths: list[str],
    modality: str,
    preprocess: dict[str, Any],
    salt: str,
    progress: bool = True,
    description: str = "ingest",
    value_ranges: Mapping[str, Range] | None = None,
    mask_set: bool = False,
) -> ShardResult:
    """Decode, join, filter and preprocess the files of one shard (paths relative to the
    adapter's root). ``value_ranges`` gives the valid (minimum, maximum) of numeric columns
    (readrace.ingest.values.value_ranges of the manifest schema: age 0-120, BMI 5-100): a
    value outside it is invalid, set missing and recorded in the row's ``invalid_values``;
    without it, only values that are not numbers are invalid. A ``mask_set`` (a lung-mask
    set, which records no race) keeps its images with race missing."""
    studies = _study_lookup(adapter)
    files = _file_lookup(adapter)
    ranges = dict(value_ranges or {})
    state = _ShardState()
    for path in tqdm(paths, desc=description, unit="file", disable=not progress, file=sys.stderr, mininterval=2):
        fid = file_id(path, salt)
        try:
            state.accepted.append(_decode_and_check(path, fid, adapter, modality, studies, files, preprocess, salt,
                                                     mask_set))
        except Rejected as error:
            state.reject(fid, error.reason, error.detail, error.patient_id)
        except DicomReadError as error:
            state.reject(fid, error.reason, error.detail)
        except Exception as error:  # noqa: BLE001 - one bad file must never stop a dataset
            # The message and traceback may quote the path: they go to the private detail.
            log.error("unexpected error on file %s (%s); its traceback is in the private quarantine list",
                      fid, type(error).__name__)
            state.reject(fid, UNEXPECTED_ERROR, traceback_detail(error))

    reduced = Counter(item.reduction for item in state.accepted if item.reduction > 1)
    if reduced:
        log.info("%d of %d images decoded at a reduced resolution (%s)", sum(reduced.values()), len(state.accepted),
                 ", ".join(f"1/{factor}: {count}" for factor, count in sorted(reduced.items())))
    if modality == "ct":
        placed = _order_ct(state.accepted, state)
    else:
        placed = [(item, [None] * item.pixels.shape[0]) for item in state.accepted]

    size = preprocess["size"]
    # Copied into one array file by file, each file's pixels released once copied: the shard
    # never holds its cache images twice (a 2,000-file shard at 320 px is 400 MB of them).
    stacked = np.empty((sum(len(indices) for _, indices in placed), size, size), CACHE_DTYPE)
    rows: list[dict[str, Any]] = []
    for item, slice_indices in placed:
        for frame, slice_index in enumerate(slice_indices):
            stacked[len(rows)] = item.pixels[frame]
            rows.append(_row(item, frame, slice_index, modality, salt, ranges))
        item.pixels = None  # type: ignore[assignment]
    table = pd.DataFrame(rows, columns=list(SHARD_ROW_COLUMNS))
    table[list(NUMERIC_COLUMNS)] = table[list(NUMERIC_COLUMNS)].astype(float)
    quarantine = pd.DataFrame(state.quarantine, columns=list(QUARANTINE_COLUMNS))
    return ShardResult(table, quarantine, stacked)


def write_shard(result: ShardResult, rows_path: Path, quarantine_path: Path, images_path: Path) -> None:
    """The rows and images (public: pseudonyms only) and the quarantine (private: details)."""
    result.rows.to_parquet(rows_path, index=False)
    result.quarantine.to_csv(quarantine_path, index=False)
    np.save(images_path, result.images)


def read_shard_quarantine(path: str | Path) -> pd.DataFrame:
    """A shard's quarantine as written by :func:`write_shard` (empty cells stay "")."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)

