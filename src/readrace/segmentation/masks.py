"""Lung-mask arrays on the cache grid: the interface between segmentation and its users.

Two arrays per dataset sit beside the image cache (``results/{dataset}/cache/``, see
:mod:`readrace.paths`), each ``(N, size, size)`` uint8, row ``i`` the mask of cache row ``i``
(manifest ``cache_index == i``):

``truth_masks.npy`` (:data:`readrace.paths.TRUTH_MASKS`)
    The dataset's own ground truth (the synthetic cohort's, a public mask set's), 1 = lung.
    A row without ground truth is :data:`MISSING` (255) in every pixel: a sentinel rather
    than a side column, so that the array alone says which rows can be scored, and a row
    read without checking cannot pass for an empty (all-0) mask. :func:`has_mask` finds them.
``masks.npy`` (:data:`readrace.paths.MASKS`)
    The masks the segmentation stage computed (U-Net for radiographs, Hounsfield units for
    CT), 0/1 in every row: what ``lung`` / ``nonlung`` and the saliency-in-lung share read.

Geometry: a mask goes through the same geometry as its image (readrace.ingest.preprocess:
the whole field resized straight to the square cache grid, no crop): resized as a float with
the same antialiased bilinear filter, then thresholded at 0.5. A mask on a coarser native
grid than its image (SCR's 1024-px masks of JSRT's 2048-px images) covers the same field,
so the result is the same but for pixels on the lung's edge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from readrace.ingest.preprocess import resize_square

#: The value of every pixel of a truth-mask row that has no ground truth.
MISSING = 255
MASK_DTYPE = np.uint8


class MaskError(ValueError):
    """A mask array or a dataset's mask file is not what the interface promises."""


def to_grid(mask: np.ndarray, size: int) -> np.ndarray:
    """A native-grid mask ``(H, W)`` (any nonzero value is lung) as a 0/1 uint8 ``(size, size)``
    mask on the cache grid, by the image's own resize (module doc)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise MaskError(f"a lung mask must be 2-D (H, W), got shape {mask.shape}")
    resized = resize_square((mask != 0).astype(np.float32)[None], size)[0]
    return (resized >= 0.5).astype(MASK_DTYPE)


def has_mask(masks: np.ndarray) -> np.ndarray:
    """Per row of a truth-mask array: True where it holds ground truth (not :data:`MISSING`)."""
    masks = np.asarray(masks)
    return masks.reshape(len(masks), -1)[:, 0] != MISSING


def missing_rows(n: int, size: int) -> np.ndarray:
    """``n`` truth-mask rows without ground truth."""
    return np.full((n, size, size), MISSING, MASK_DTYPE)


def check_masks(masks: np.ndarray, images: np.ndarray, where: str | Path, truth: bool = False) -> None:
    """A mask array fits the interface for ``images``: same rows and grid, uint8, values 0/1
    (and :data:`MISSING` rows, each wholly so, when ``truth``)."""
    if masks.dtype != MASK_DTYPE:
        raise MaskError(f"{where}: masks must be uint8, got {masks.dtype}")
    if masks.shape != images.shape:
        raise MaskError(f"{where}: masks of shape {masks.shape} for a cache of shape {images.shape}")
    for start in range(0, len(masks), 4096):
        block = np.asarray(masks[start:start + 4096])
        if truth:
            absent = block == MISSING
            partly = absent.any(axis=(1, 2)) & ~absent.all(axis=(1, 2))
            if partly.any():
                row = start + int(np.flatnonzero(partly)[0])
                raise MaskError(f"{where}: row {row} is partly {MISSING} (a missing mask is {MISSING} everywhere)")
            block = block[~absent.all(axis=(1, 2))]
        if block.size and block.max() > 1:
            raise MaskError(f"{where}: mask values must be 0 or 1" + (f" (or a {MISSING} row)" if truth else ""))


def read_masks(path: str | Path, images: np.ndarray, truth: bool = False) -> np.ndarray:
    """A mask array (memory-mapped) checked against its cache ``images``."""
    if not Path(path).is_file():
        raise MaskError(f"{path}: no such mask array")
    masks = np.load(path, mmap_mode="r")
    check_masks(masks, images, path, truth)
    return masks


def write_masks(path: str | Path, masks: np.ndarray) -> None:
    """Write a mask array as a memory-mappable ``.npy``."""
    np.save(path, np.ascontiguousarray(masks, dtype=MASK_DTYPE))
