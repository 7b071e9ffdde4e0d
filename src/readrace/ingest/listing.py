"""Listing: the dataset's input files, each with its pseudonym and its ingestion shard.

Files of one folder share a shard for CT, so that a series is never split across jobs (its
slices are ordered together). The shards are known from the config alone; the listing is a
job of the DAG, never a scan while the Snakefile is parsed.

The listing is private: source paths carry identifiers (MIMIC-CXR ``p{subject_id}``,
RSPECT's UIDs, hospital exports named by MRN). It is written to
``private/{dataset}/files.csv`` (path, file_id, shard), the input of the shard jobs; its
public record ``results/{dataset}/ingest/files.csv`` has only file_id and shard.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from readrace.data.pseudonym import file_id
from readrace.ingest.adapters import DatasetAdapter, DatasetError

#: Columns of the private listing; the public one drops ``path``.
LISTING_COLUMNS: tuple[str, ...] = ("path", "file_id", "shard")


def shard_of(unit: str, n_shards: int) -> int:
    """The shard of a file or folder: a stable hash, so adding files moves no other file."""
    digest = hashlib.sha256(unit.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def list_files(adapter: DatasetAdapter, modality: str, n_shards: int, salt: str) -> pd.DataFrame:
    """The dataset's files (relative to its root) with their file_id and shard."""
    paths = adapter.files()
    if not paths:
        raise DatasetError(f"{adapter.name}: no files found under {adapter.root}")
    units = [str(Path(p).parent) if modality == "ct" else p for p in paths]
    files = pd.DataFrame(
        {
            "path": paths,
            "file_id": [file_id(p, salt) for p in paths],
            "shard": [shard_of(u, n_shards) for u in units],
        }
    )
    if files["file_id"].duplicated().any():  # 64-bit ids: about 3e-8 for a million files
        raise DatasetError(f"{adapter.name}: two files share a file_id; change pseudonym_salt")
    return files


def write_listing(files: pd.DataFrame, private_path: str | Path, public_path: str | Path) -> None:
    """The private listing (path, file_id, shard) and its public record (file_id, shard)."""
    files[list(LISTING_COLUMNS)].to_csv(private_path, index=False)
    files[["file_id", "shard"]].to_csv(public_path, index=False)


def read_listing(path: str | Path) -> pd.DataFrame:
    """A private listing as written by :func:`write_listing` (paths kept as written: a file
    called "NA" stays "NA")."""
    return pd.read_csv(path, dtype={"path": str, "file_id": str, "shard": int}, keep_default_na=False)
