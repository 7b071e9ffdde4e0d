"""A dataset's ground-truth lung masks, carried onto its cache grid row for row.

The truth-mask job reads the private map from cache rows to source files
(``private/{dataset}/sources.csv``: image_id, file_id, frame, path, in cache order; see
readrace.ingest.gather), asks the dataset's adapter for each file's mask
(:meth:`readrace.ingest.adapters.DatasetAdapter.lung_mask`) and writes
``results/{dataset}/cache/truth_masks.npy`` (readrace.segmentation.masks). Only the uint8
array reaches results/: no path, UID or file name.

A job of its own rather than a part of the shards: the images are not decoded again, and
the ingestion of a dataset without masks does not change at all.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from readrace.ingest.adapters import DatasetAdapter
from readrace.segmentation.masks import MASK_DTYPE, MaskError, missing_rows, to_grid

log = logging.getLogger(__name__)


def truth_masks(adapter: DatasetAdapter, sources: pd.DataFrame, size: int,
                out_path: str | Path | None = None) -> np.ndarray:
    """The ground-truth masks of every cache row (``sources`` in cache order), on the
    ``size`` x ``size`` grid, :data:`~readrace.segmentation.masks.MISSING` where the
    dataset has none; written to ``out_path`` (memory-mapped as it fills) when given."""
    for column in ("path", "frame"):
        if column not in sources:
            raise MaskError(f"the private sources map lacks its {column!r} column")
    n = len(sources)
    if out_path is None:
        masks = missing_rows(n, size)
    else:
        masks = np.lib.format.open_memmap(out_path, mode="w+", dtype=MASK_DTYPE, shape=(n, size, size))
        masks[:] = missing_rows(1, size)
    found = 0
    # Rows of one file are adjacent (a multi-frame file's frames), so one read per file.
    last_path, last_mask = None, None
    for row, (path, frame) in enumerate(zip(sources["path"].astype(str), sources["frame"].astype(int))):
        if path != last_path:
            last_path, last_mask = path, adapter.lung_mask(path)
        if last_mask is None:
            continue
        mask = np.asarray(last_mask)
        if mask.ndim == 3:
            if not 0 <= frame < mask.shape[0]:
                raise MaskError(f"cache row {row}: its file has {mask.shape[0]} mask frame(s), not frame {frame}")
            mask = mask[frame]
        masks[row] = to_grid(mask, size)
        found += 1
    if isinstance(masks, np.memmap):
        masks.flush()
    log.info("ground-truth lung masks for %d of %d cache rows", found, n)
    return masks
