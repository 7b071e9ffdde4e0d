"""Chest-CT lungs from Hounsfield units, per series, on the cache grid.

The cache holds windowed values in [0, 1] (readrace.ingest.preprocess.window_hu), so the
window is inverted: ``HU = low + value * width`` with ``low = center - width / 2``. That is
exact inside the window and the threshold must lie strictly inside it (checked): values
clipped to 0 or 1 are only known to be below or above it, which is all a threshold needs.
(The cache is resized before thresholding; a slice's lung edge is then decided at the
half-way value of the resized intensities, which is where the image's own edge lies.)

Per series (its slices stacked by ``slice_index``):

1. air: ``HU < threshold_hu`` (about -400 HU: lung parenchyma is -900 to -500, soft tissue
   above -100);
2. 3-D connected components (6-connectivity); components touching the in-plane faces of the
   volume are the air around the body and are dropped (not the first and last slices: a
   chest scan cuts through the lungs there);
3. the two largest components are kept (both lungs, or one when they touch), the second
   only when it holds at least ``min_second_fraction`` of the first (the trachea and bowel
   gas are smaller);
4. holes filled slice by slice (vessels and nodules inside the lung are denser than air),
   then a binary closing of ``closing`` pixels in-plane smooths the edge (0: none).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from readrace.segmentation.masks import MASK_DTYPE, MaskError


def hounsfield(values: np.ndarray, window: dict[str, float]) -> np.ndarray:
    """Windowed cache values in [0, 1] back to HU (exact inside the window)."""
    low = window["center"] - window["width"] / 2.0
    return low + np.asarray(values, dtype=np.float32) * window["width"]


def lung_volume(hu: np.ndarray, threshold_hu: float = -400.0, min_second_fraction: float = 0.05,
                closing: int = 1) -> np.ndarray:
    """Lung mask ``(slices, H, W)`` uint8 of one series' HU volume (module doc)."""
    if hu.ndim != 3:
        raise MaskError(f"a CT series must be (slices, H, W), got shape {hu.shape}")
    air = hu < threshold_hu
    labels, n = ndimage.label(air)
    if n == 0:
        return np.zeros(hu.shape, MASK_DTYPE)
    border = np.unique(np.concatenate([labels[:, 0, :].ravel(), labels[:, -1, :].ravel(),
                                       labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    sizes[border] = 0
    order = np.argsort(sizes)[::-1]
    keep = [order[0]] if sizes[order[0]] > 0 else []
    if len(order) > 1 and sizes[order[1]] > 0 and sizes[order[1]] >= min_second_fraction * sizes[order[0]]:
        keep.append(order[1])
    lungs = np.isin(labels, keep)
    if closing > 0:
        structure = np.zeros((1, 3, 3), bool)
        structure[0] = ndimage.generate_binary_structure(2, 1)
        lungs = ndimage.binary_closing(lungs, structure=structure, iterations=closing, border_value=0)
    for k in range(lungs.shape[0]):
        lungs[k] = ndimage.binary_fill_holes(lungs[k])
    return lungs.astype(MASK_DTYPE)


def ct_lung_masks(manifest: pd.DataFrame, images: np.ndarray, window: dict[str, float],
                  settings: dict[str, Any]) -> np.ndarray:
    """Lung masks of every cache row of a CT dataset, series by series (module doc)."""
    if not window["center"] - window["width"] / 2 < settings["threshold_hu"] < window["center"] + window["width"] / 2:
        raise MaskError(
            f"hu.threshold_hu {settings['threshold_hu']} lies outside the cache window "
            f"(center {window['center']}, width {window['width']}): the cache cannot tell it"
        )
    masks = np.zeros(images.shape, MASK_DTYPE)
    order = manifest.sort_values(["series_id", "slice_index"], kind="stable")
    for _, series in order.groupby("series_id", sort=False):
        rows = series["cache_index"].to_numpy()
        volume = hounsfield(images[np.sort(rows)], window)[np.argsort(np.argsort(rows))]
        masks[rows] = lung_volume(volume, settings["threshold_hu"], settings["min_second_fraction"],
                                  int(settings["closing"]))
    return masks
