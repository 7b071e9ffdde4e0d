"""From decoded pixels to cache pixels: intensity to [0, 1], then a square resize.

Decoded radiographs and mammograms already come in [0, 1] with 1 = white (readrace.ingest.dicom
applies the modality LUT, the VOI LUT or window, and inverts MONOCHROME1). CT comes in
Hounsfield units and is mapped through a window (``center``, ``width`` in HU) to [0, 1].

Images are resized straight to ``size`` x ``size`` (the aspect ratio is not kept, as in the
paper's training), with an antialiased bilinear filter so that downsampling does not alias
high spatial frequencies into low ones: the frequency experiments depend on it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: dtype of the cache: float16 keeps about 11 bits of the [0, 1] range, enough for the faint
#: high-frequency content that 8-bit PNGs (the paper's cache) would quantise away.
CACHE_DTYPE = np.float16


def window_hu(frames: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map Hounsfield units to [0, 1] through the window [center - width/2, center + width/2]."""
    low = center - width / 2.0
    return np.clip((frames.astype(np.float32) - low) / width, 0.0, 1.0)


def resize_square(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize (n, H, W) float frames to (n, size, size), antialiased."""
    if frames.ndim != 3:
        raise ValueError(f"expected frames of shape (n, H, W), got {frames.shape}")
    if frames.shape[1:] == (size, size):
        return frames.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[:, None]
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized[:, 0].numpy()


def to_cache(frames: np.ndarray, is_ct: bool, size: int, window: dict | None) -> np.ndarray:
    """Cache pixels of decoded frames: (n, size, size) in [0, 1], as :data:`CACHE_DTYPE`."""
    if is_ct:
        if window is None:
            raise ValueError("CT frames need a window (center, width in HU)")
        frames = window_hu(frames, window["center"], window["width"])
    resized = resize_square(frames, size)
    return np.clip(resized, 0.0, 1.0).astype(CACHE_DTYPE)
