"""Quality of lung masks: Dice and HD95 against ground truth, and implausible masks.

Per dataset (:func:`mask_quality`), one row per cache row: pseudonymous ids, split, the
mask's area (pixels of the cache grid) and lung count (connected components holding at least
``min_lung_fraction`` of the mask, 2-D, 8-connectivity), and where the row is scored, its
Dice and 95th-percentile Hausdorff distance (MONAI's ``compute_hausdorff_distance`` with
``percentile=95``, in pixels of the cache grid) against the ground truth. Scored rows: the
rows with ground truth, of the test split only on a dataset the U-Net trained on. HD95 is
undefined (NaN) when the mask or its truth is empty.

The table (:func:`segmentation_table`) is long: dataset, method, metric (``dice``,
``hd95``), value (the mean over scored images), ci_low, ci_high (patient bootstrap,
readrace.evaluation.metrics.bootstrap_mean), patients, images, rows (which rows were scored).

Implausible masks (:func:`implausible_masks`), per radiograph (a CT slice may rightly show
one lung or none, so CT is judged per series, the slices' masks stacked): ``empty`` (no lung
pixel), ``one lung`` (fewer than two lungs as counted above; for CT, 3-D components), and
``area`` (area below ``area_low`` or above ``area_high`` times the dataset's median area of
its non-empty units). Listed by pseudonymous image id (series id for CT).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from readrace.evaluation.metrics import bootstrap_mean
from readrace.segmentation.masks import has_mask
from readrace.segmentation.unet import dice_scores

QUALITY_COLUMNS = ("image_id", "patient_id", "series_id", "slice_index", "split", "area", "lungs", "scored",
                   "dice", "hd95")
TABLE_COLUMNS = ("dataset", "method", "metric", "value", "ci_low", "ci_high", "patients", "images", "rows")
IMPLAUSIBLE_COLUMNS = ("dataset", "method", "unit", "id", "reason", "area", "median_area")

_EIGHT = np.ones((3, 3), bool)


def count_lungs(mask: np.ndarray, min_fraction: float, structure: np.ndarray | None = None) -> int:
    """Connected components of a binary mask holding at least ``min_fraction`` of it."""
    labels, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= min_fraction * sizes.sum()).sum())


def hd95(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image 95th-percentile Hausdorff distance (pixels) of binary masks ``(N, H, W)``;
    NaN where either mask is empty."""
    from monai.metrics import compute_hausdorff_distance

    out = np.full(len(predicted), np.nan)
    both = (np.asarray(predicted).reshape(len(predicted), -1).any(1)
            & np.asarray(truth).reshape(len(truth), -1).any(1))
    if both.any():
        p = torch.from_numpy(np.asarray(predicted)[both].astype(np.float32))[:, None]
        t = torch.from_numpy(np.asarray(truth)[both].astype(np.float32))[:, None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            distances = compute_hausdorff_distance(p, t, include_background=True, percentile=95)
        out[both] = distances[:, 0].numpy()
    return out


def mask_quality(manifest: pd.DataFrame, masks: np.ndarray, truth: np.ndarray | None, held_out: bool,
                 min_lung_fraction: float) -> pd.DataFrame:
    """One row per cache row (module doc); ``truth`` None: nothing scored."""
    rows = manifest.sort_values("cache_index")
    index = rows["cache_index"].to_numpy()
    masks = np.asarray(masks)[index]
    table = pd.DataFrame({
        "image_id": rows["image_id"].to_numpy(),
        "patient_id": rows["patient_id"].to_numpy(),
        "series_id": rows["series_id"].to_numpy() if "series_id" in rows else None,
        "slice_index": rows["slice_index"].to_numpy() if "slice_index" in rows else None,
        "split": rows["split"].to_numpy(),
        "area": masks.reshape(len(masks), -1).sum(axis=1).astype(np.int64),
        "lungs": [count_lungs(m, min_lung_fraction, _EIGHT) for m in masks],
    })
    scored = np.zeros(len(rows), bool)
    if truth is not None:
        truth = np.asarray(truth)[index]
        scored = has_mask(truth)
        if held_out:
            scored &= table["split"].to_numpy() == "test"
    table["scored"] = scored
    table["dice"] = np.nan
    table["hd95"] = np.nan
    if scored.any():
        table.loc[scored, "dice"] = dice_scores(masks[scored], truth[scored])
        table.loc[scored, "hd95"] = hd95(masks[scored], truth[scored])
    return table[list(QUALITY_COLUMNS)]


def segmentation_table(qualities: dict[str, tuple[str, bool, pd.DataFrame]], n_boot: int, seed: int,
                       confidence: float) -> pd.DataFrame:
    """The long quality table from each dataset's ``(method, held_out, quality rows)``."""
    rows = []
    for dataset, (method, held_out, quality) in qualities.items():
        scored = quality[quality["scored"]]
        if scored.empty:
            continue
        for metric in ("dice", "hd95"):
            stats = bootstrap_mean(scored[metric].to_numpy(), scored["patient_id"].to_numpy(), n_boot, seed, confidence)
            rows.append({"dataset": dataset, "method": method, "metric": metric, "value": stats["value"],
                         "ci_low": stats["ci_low"], "ci_high": stats["ci_high"], "patients": stats["n_patients"],
                         "images": stats["n_images"], "rows": "test split" if held_out else "all"})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def implausible_masks(dataset: str, method: str, modality: str, quality: pd.DataFrame, masks: np.ndarray,
                      manifest: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """The dataset's implausible masks (module doc), one row per unit and reason."""
    if modality == "ct":
        units = []
        for series_id, series in manifest.sort_values(["series_id", "slice_index"]).groupby("series_id", sort=True):
            volume = np.asarray(masks)[series["cache_index"].to_numpy()]  # in slice order
            lungs = count_lungs(volume, settings["min_lung_fraction"])
            units.append(("series", series_id, int(volume.sum()), lungs))
    else:
        units = [("image", i, int(a), int(n)) for i, a, n in zip(quality["image_id"], quality["area"], quality["lungs"])]
    areas = np.array([area for _, _, area, _ in units], dtype=float)
    median = float(np.median(areas[areas > 0])) if (areas > 0).any() else 0.0
    found = []
    for unit, uid, area, lungs in units:
        reasons = []
        if area == 0:
            reasons.append("empty")
        else:
            if lungs < 2:
                reasons.append("one lung")
            if area < settings["area_low"] * median or area > settings["area_high"] * median:
                reasons.append("area")
        found += [{"dataset": dataset, "method": method, "unit": unit, "id": uid, "reason": reason, "area": area,
                   "median_area": median} for reason in reasons]
    return pd.DataFrame(found, columns=list(IMPLAUSIBLE_COLUMNS))
