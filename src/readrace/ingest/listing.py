"""Listing: the dataset's input files, each with its ingestion shard.

Files of one folder share a shard for CT, so that a series is never split across jobs (its
slices are ordered together). The shards are known from the config alone; the listing is a
job of the DAG, never a scan while the Snakefile is parsed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from readrace.ingest.adapters import DatasetAdapter, DatasetError


def shard_of(unit: str, n_shards: int) -> int:
    """The shard of a file or folder: a stable hash, so adding files moves no other file."""
    digest = hashlib.sha256(unit.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def list_files(adapter: DatasetAdapter, modality: str, n_shards: int) -> pd.DataFrame:
    """The dataset's files (relative to its root) with their shard."""
    paths = adapter.files()
    if not paths:
        raise DatasetError(f"{adapter.name}: no files found under {adapter.root}")
    units = [str(Path(p).parent) if modality == "ct" else p for p in paths]
    return pd.DataFrame({"path": paths, "shard": [shard_of(u, n_shards) for u in units]})

