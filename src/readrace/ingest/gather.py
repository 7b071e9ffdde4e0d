"""Gather: the shards of a dataset into its manifest, quarantine, cache and summary.

Assigns patient-level splits, and checks that nothing was lost (every listed file is in the
manifest or the quarantine, never both) and that no patient is in two splits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readrace.data.manifest import MANIFEST_COLUMNS, validate_manifest
from readrace.data.splits import assign_splits, check_patient_splits
from readrace.ingest.preprocess import CACHE_DTYPE
from readrace.labels import FINDINGS

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """Ingestion lost or duplicated files, or its inputs disagree."""


def gather_shards(
    files: pd.DataFrame,
    shards: list[tuple[Path, Path, Path]],
    split: dict[str, Any],
    manifest_schema: dict | str | Path,
    manifest_path: Path,
    quarantine_path: Path,
    cache_path: Path,
    summary_path: Path | None = None,
) -> pd.DataFrame:
    """Concatenate shards into the manifest, quarantine, cache and summary; return the manifest.

    ``shards`` lists (rows.parquet, quarantine.csv, images.npy) per shard.
    """
    tables, quarantines, counts = [], [], []
    for rows_path, quarantine_path_i, images_path in shards:
        rows = pd.read_parquet(rows_path)
        images = np.load(images_path, mmap_mode="r")
        if len(rows) != images.shape[0]:
            raise IngestError(f"{rows_path}: {len(rows)} rows but {images.shape[0]} images in {images_path}")
        tables.append(rows)
        quarantines.append(pd.read_csv(quarantine_path_i, dtype=str, keep_default_na=False))
        counts.append(images.shape)
    manifest = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=MANIFEST_COLUMNS)
    quarantine = pd.concat(quarantines, ignore_index=True)

    check_accounting(files["path"], manifest["path"], quarantine["path"])

    manifest["split"] = assign_splits(manifest["patient_id"], split, split["salt"]).to_numpy()
    manifest["cache_index"] = np.arange(len(manifest), dtype=np.int64)
    manifest = manifest[list(MANIFEST_COLUMNS)]
    for column in ("age", "bmi", *FINDINGS):
        manifest[column] = pd.to_numeric(manifest[column], errors="coerce").astype(float)
    manifest["slice_index"] = manifest["slice_index"].astype("Int64")
    check_patient_splits(manifest)
    validate_manifest(manifest, manifest_schema)

    size = counts[0][1:] if counts else (0, 0)
    cache = np.lib.format.open_memmap(cache_path, mode="w+", dtype=CACHE_DTYPE, shape=(len(manifest), *size))
    offset = 0
    for _, _, images_path in shards:
        images = np.load(images_path, mmap_mode="r")
        cache[offset : offset + images.shape[0]] = images
        offset += images.shape[0]
    cache.flush()
    del cache

    manifest.to_parquet(manifest_path, index=False)
    quarantine.sort_values("path").to_csv(quarantine_path, index=False)
    if summary_path is not None:
        summarize(files, manifest, quarantine).to_csv(summary_path, index=False)
    return manifest


def summarize(files: pd.DataFrame, manifest: pd.DataFrame, quarantine: pd.DataFrame) -> pd.DataFrame:
    """The dataset's ingestion summary, one row per count, like the paper's Table 1.

    Columns: ``group`` (files, quarantine, kept, race, sex, split), ``value``, ``patients``
    (distinct pseudonymous patients; for the files and quarantine rows, those whose files
    could be joined to a patient) and ``count`` (files for the files and quarantine groups,
    images otherwise).
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
    for column in ("race", "sex", "split"):
        for value, group in manifest.groupby(column, sort=True, dropna=False):
            value = "missing" if pd.isna(value) else value
            rows.append({"group": column, "value": value, "patients": group["patient_id"].nunique(), "count": len(group)})
    summary = pd.DataFrame(rows, columns=["group", "value", "patients", "count"])
    summary["patients"] = summary["patients"].astype("Int64")
    return summary


def check_accounting(found: pd.Series, ingested: pd.Series, quarantined: pd.Series) -> None:
    """Every file found is ingested or quarantined, never both, and nothing else appears."""
    found_set, ingested_set, quarantined_set = set(found), set(ingested), set(quarantined)
    problems = []
    lost = found_set - ingested_set - quarantined_set
    if lost:
        problems.append(f"{len(lost)} file(s) neither ingested nor quarantined, e.g. {sorted(lost)[:3]}")
    both = ingested_set & quarantined_set
    if both:
        problems.append(f"{len(both)} file(s) both ingested and quarantined, e.g. {sorted(both)[:3]}")
    stray = (ingested_set | quarantined_set) - found_set
    if stray:
        problems.append(f"{len(stray)} file(s) not in the file list, e.g. {sorted(stray)[:3]}")
    if quarantined.duplicated().any():
        problems.append("a file is quarantined twice")
    if problems:
        raise IngestError("ingestion accounting failed: " + "; ".join(problems))
    log.info(
        "accounting: %d files found = %d ingested + %d quarantined",
        len(found_set), len(ingested_set), len(quarantined_set),
    )
