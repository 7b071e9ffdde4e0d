"""Gather: the shards of a dataset into its manifest, quarantine, cache, summary and descriptor.

Assigns patient-level splits, and checks that nothing was lost (every listed file is in the
manifest or the quarantine, never both, counted by file_id) and that no patient is in two
splits.

Public outputs (``results/{dataset}/``) name files by pseudonym only; the map back to the
source files is written to ``private/{dataset}/``:

- ``sources.csv``: image_id, file_id, frame, path: the file behind every manifest row;
- ``quarantine.csv``: file_id, path, reason, detail: every quarantined file with the
  library's message or the header value behind its public reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from readrace.data.cache import dataset_descriptor, write_cache, write_descriptor
from readrace.data.manifest import MANIFEST_COLUMNS, validate_manifest
from readrace.data.splits import assign_splits, check_patient_splits
from readrace.ingest.preprocess import CACHE_DTYPE
from readrace.ingest.shard import read_shard_quarantine
from readrace.ingest.values import NUMERIC_COLUMNS

log = logging.getLogger(__name__)

#: Columns of the public quarantine list.
PUBLIC_QUARANTINE_COLUMNS: tuple[str, ...] = ("file_id", "reason", "patient_id")
#: Columns of the private map from manifest rows to source files.
SOURCES_COLUMNS: tuple[str, ...] = ("image_id", "file_id", "frame", "path")
#: Columns of the private quarantine list.
PRIVATE_QUARANTINE_COLUMNS: tuple[str, ...] = ("file_id", "path", "reason", "detail")
#: The summary's group of invalid numeric values (readrace.ingest.values).
INVALID_VALUE_GROUP = "invalid value"


class IngestError(RuntimeError):
    """Ingestion lost or duplicated files, or its inputs disagree."""


#: Columns of the shard index (results/{dataset}/ingest/shards.csv).
SHARD_INDEX_COLUMNS: tuple[str, ...] = ("shard", "rows", "quarantine", "images", "n_images")


def write_shard_index(shards: list[tuple[str, str, str]], path: str | Path) -> pd.DataFrame:
    """The index of a dataset's shards: their (rows, quarantine, images) files and images.

    The gather job reads the shards through it. Its own single input keeps the gather job
    cheap in Snakemake's DAG: every model's training and prediction asks for the gather's
    outputs, and Snakemake compares each such request with every input of the job that
    produces it (thousands of shard files on a real dataset).
    """
    rows = []
    for number, (rows_path, quarantine_path, images_path) in enumerate(shards):
        n_rows = pq.read_metadata(rows_path).num_rows
        n_images = np.load(images_path, mmap_mode="r").shape[0]
        if n_rows != n_images:
            raise IngestError(f"{rows_path}: {n_rows} rows but {n_images} images in {images_path}")
        rows.append({"shard": number, "rows": str(rows_path), "quarantine": str(quarantine_path),
                     "images": str(images_path), "n_images": n_images})
    index = pd.DataFrame(rows, columns=list(SHARD_INDEX_COLUMNS))
    index.to_csv(path, index=False)
    return index


def read_shard_index(path: str | Path) -> list[tuple[Path, Path, Path]]:
    """The (rows, quarantine, images) files of every shard, in shard order."""
    index = pd.read_csv(path, dtype={"rows": str, "quarantine": str, "images": str})
    missing = [column for column in SHARD_INDEX_COLUMNS if column not in index]
    if missing:
        raise IngestError(f"{path} is not a shard index: it lacks {', '.join(missing)}")
    return [(Path(r), Path(q), Path(i)) for r, q, i in zip(index["rows"], index["quarantine"], index["images"])]


def gather_shards(
    files: pd.DataFrame,
    shards: list[tuple[Path, Path, Path]],
    split: dict[str, Any],
    manifest_schema: dict | str | Path,
    *,
    modality: str,
    units: Mapping[str, str],
    manifest_path: Path,
    quarantine_path: Path,
    cache_path: Path,
    summary_path: Path,
    descriptor_path: Path,
    sources_path: Path,
    private_quarantine_path: Path,
    listing_path: str | Path | None = None,
    mask_set: bool = False,
) -> pd.DataFrame:
    """Concatenate shards into the dataset's outputs; return the manifest.

    ``files`` is the private listing (path, file_id, shard; readrace.ingest.listing),
    ``shards`` lists (rows.parquet, quarantine.csv, images.npy) per shard, ``listing_path``
    is where the listing lies, for the accounting error to point at; a ``mask_set`` has race
    missing in every row (readrace.data.manifest.validate_manifest). The cache is hashed
    while it is copied from the shards, for the descriptor.
    """
    tables, quarantines, shapes = [], [], []
    for rows_path, quarantine_path_i, images_path in shards:
        rows = pd.read_parquet(rows_path)
        images = np.load(images_path, mmap_mode="r")
        if len(rows) != images.shape[0]:
            raise IngestError(f"{rows_path}: {len(rows)} rows but {images.shape[0]} images in {images_path}")
        tables.append(rows)
        quarantines.append(read_shard_quarantine(quarantine_path_i))
        shapes.append(images.shape)
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=[*MANIFEST_COLUMNS, "file_id"])
    quarantine = pd.concat(quarantines, ignore_index=True)

    check_accounting(files["file_id"], rows["file_id"], quarantine["file_id"], private_map=listing_path)

    rows["split"] = assign_splits(rows["patient_id"], split, split["salt"]).to_numpy()
    rows["cache_index"] = np.arange(len(rows), dtype=np.int64)
    manifest = rows[list(MANIFEST_COLUMNS)].copy()
    # The shard job parsed these (readrace.ingest.values): float, NaN where missing or invalid.
    manifest[list(NUMERIC_COLUMNS)] = manifest[list(NUMERIC_COLUMNS)].astype(float)
    manifest["slice_index"] = manifest["slice_index"].astype("Int64")
    check_patient_splits(manifest)
    validate_manifest(manifest, manifest_schema, mask_set=mask_set)

    size = tuple(shapes[0][1:]) if shapes else (0, 0)
    shape = (len(manifest), *size)
    sha256 = write_cache(cache_path, _shard_images(shards), shape, CACHE_DTYPE)

    manifest.to_parquet(manifest_path, index=False)
    public = quarantine[list(PUBLIC_QUARANTINE_COLUMNS)].sort_values(["reason", "file_id"])
    public.to_csv(quarantine_path, index=False)
    summarize(files, rows, quarantine).to_csv(summary_path, index=False)
    descriptor = dataset_descriptor(
        modality, len(manifest), manifest["patient_id"].nunique(),
        Path(cache_path).relative_to(Path(descriptor_path).parent).as_posix(), shape, CACHE_DTYPE, sha256, units,
    )  # fmt: skip
    write_descriptor(descriptor_path, descriptor)
    write_private_map(files, rows, quarantine, sources_path, private_quarantine_path)
    return manifest


def _shard_images(shards: list[tuple[Path, Path, Path]]) -> Iterator[np.ndarray]:
    for _, _, images_path in shards:
        yield np.load(images_path, mmap_mode="r")


def write_private_map(
    files: pd.DataFrame, rows: pd.DataFrame, quarantine: pd.DataFrame, sources_path: Path, quarantine_path: Path
) -> None:
    """The map from pseudonyms back to source files: ``sources_path`` (image_id, file_id,
    frame, path; in manifest order) and ``quarantine_path`` (file_id, path, reason, detail;
    by path)."""
    paths = files.set_index("file_id")["path"]
    sources = rows[["image_id", "file_id", "frame"]].assign(path=rows["file_id"].map(paths).to_numpy())
    sources[list(SOURCES_COLUMNS)].to_csv(sources_path, index=False)
    private = quarantine.assign(path=quarantine["file_id"].map(paths).to_numpy())
    private[list(PRIVATE_QUARANTINE_COLUMNS)].sort_values("path").to_csv(quarantine_path, index=False)


def summarize(files: pd.DataFrame, manifest: pd.DataFrame, quarantine: pd.DataFrame) -> pd.DataFrame:
    """The dataset's ingestion summary, one row per count, like the paper's Table 1.

    Columns: ``group`` (files, quarantine, kept, invalid value, race, sex, split), ``value``,
    ``patients`` (distinct pseudonymous patients; for the files and quarantine rows, those
    whose files could be joined to a patient) and ``count`` (files for the files and
    quarantine groups, images otherwise). The ``invalid value`` rows (one per numeric column
    that had any, when ``manifest`` has the shard's ``invalid_values`` column) count the kept
    images whose value was not a number or out of range, and was therefore set missing.
    """
    # Patients found: those of the kept images and of every quarantined file that could be
    # joined to a patient (an unreadable file names none).
    joined = quarantine["patient_id"].replace("", np.nan).dropna()
    found_patients = len(set(manifest["patient_id"]) | set(joined))
    rows = [{"group": "files", "value": "found", "patients": found_patients, "count": len(files)}]
    for reason, group in quarantine.groupby("reason", sort=True):
        known = group["patient_id"].replace("", np.nan).dropna()
        rows.append({"group": "quarantine", "value": reason, "patients": known.nunique(), "count": len(group)})
    rows.append({"group": "kept", "value": "all", "patients": manifest["patient_id"].nunique(), "count": len(manifest)})
    if "invalid_values" in manifest:
        invalid = manifest["invalid_values"].fillna("").str.split(";")
        for column in NUMERIC_COLUMNS:
            hit = invalid.map(lambda names: column in names)
            if hit.any():
                patients = manifest.loc[hit, "patient_id"].nunique()
                rows.append({"group": INVALID_VALUE_GROUP, "value": column, "patients": patients, "count": int(hit.sum())})
    for column in ("race", "sex", "split"):
        for value, group in manifest.groupby(column, sort=True, dropna=False):
            value = "missing" if pd.isna(value) else value
            rows.append({"group": column, "value": value, "patients": group["patient_id"].nunique(), "count": len(group)})
    summary = pd.DataFrame(rows, columns=["group", "value", "patients", "count"])
    summary["patients"] = summary["patients"].astype("Int64")
    return summary


def check_accounting(
    found: pd.Series, ingested: pd.Series, quarantined: pd.Series, private_map: str | Path | None = None
) -> None:
    """Every file found is ingested or quarantined, never both, and nothing else appears.

    Files are compared by file_id; the error names file_ids (results/ and logs/ never hold a
    source path) and says where the private map back to the paths is.
    """
    found_set, ingested_set, quarantined_set = set(found), set(ingested), set(quarantined)
    problems = []
    lost = found_set - ingested_set - quarantined_set
    if lost:
        problems.append(f"{len(lost)} file(s) neither ingested nor quarantined, e.g. file_id {sorted(lost)[:3]}")
    both = ingested_set & quarantined_set
    if both:
        problems.append(f"{len(both)} file(s) both ingested and quarantined, e.g. file_id {sorted(both)[:3]}")
    stray = (ingested_set | quarantined_set) - found_set
    if stray:
        problems.append(f"{len(stray)} file(s) not in the file list, e.g. file_id {sorted(stray)[:3]}")
    twice = quarantined[quarantined.duplicated()]
    if len(twice):
        problems.append(f"file_id {twice.iloc[0]} is quarantined twice")
    if problems:
        where = f"; the source path of each file_id is in {private_map}" if private_map else ""
        raise IngestError("ingestion accounting failed: " + "; ".join(problems) + where)
    log.info(
        "accounting: %d files found = %d ingested + %d quarantined",
        len(found_set), len(ingested_set), len(quarantined_set),
    )
