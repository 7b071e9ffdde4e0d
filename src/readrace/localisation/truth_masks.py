"""A stand-in lung-mask cache from the synthetic cohort's ground truth.

The localisation experiments read lung masks on the cache grid, row for row with the image
cache (``readrace.paths.MASKS``), which the segmentation stage writes. Until that stage is
part of the DAG, :func:`truth_mask_cache` builds the same array from the ground-truth masks
the synthetic generator writes (``masks/{SOPInstanceUID}.npy``, native grid), found through
the private map from manifest rows to source files. The rule that calls it
(``localisation_truth_masks``) is the one input to swap for the segmentation stage's masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from readrace.ingest.preprocess import resize_square


def truth_mask_cache(manifest: pd.DataFrame, sources: pd.DataFrame, truth: pd.DataFrame, masks_dir: str | Path,
                     n_rows: int, size: int) -> np.ndarray:
    """uint8 0/1 masks ``(n_rows, size, size)``: each cache row's ground-truth lung mask,
    resized to the cache grid as its image was (antialiased bilinear, then >= 0.5).

    ``sources``: the private map (image_id, path); ``truth``: the cohort's truth.csv (path,
    SOPInstanceUID). A row without a ground-truth mask is an error naming the image id.
    """
    uid_of = dict(zip(truth["path"], truth["SOPInstanceUID"]))
    path_of = dict(zip(sources["image_id"], sources["path"]))
    out = np.zeros((n_rows, size, size), dtype=np.uint8)
    for image_id, row in zip(manifest["image_id"], manifest["cache_index"]):
        mask_path = Path(masks_dir) / f"{uid_of.get(path_of.get(image_id), '')}.npy"
        if not mask_path.is_file():
            raise FileNotFoundError(f"image {image_id}: no ground-truth lung mask in {masks_dir}")
        mask = np.load(mask_path).astype(np.float32)
        out[row] = resize_square(mask[None], size)[0] >= 0.5
    return out
