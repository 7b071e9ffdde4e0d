"""From decoded pixels to cache pixels: intensity to [0, 1], then a square resize.

Decoded radiographs and mammograms already come in [0, 1] with 1 = white (readrace.ingest.dicom
applies the modality LUT, the VOI LUT or window, and inverts MONOCHROME1). CT comes in
Hounsfield units and is mapped through a window (``center``, ``width`` in HU) to [0, 1].

Images are resized straight to ``size`` x ``size`` (the aspect ratio is not kept, as in the
paper's training), with an antialiased bilinear filter so that downsampling does not alias
high spatial frequencies into low ones: the frequency experiments depend on it.

When a frame's values are an affine map of its stored values (readrace.ingest.dicom.Affine,
the common case), :func:`cache_pixels` resizes the stored values and maps the small result:
the resize's weights sum to 1, so it commutes with the map, and with the clip once the clip
is moved onto the stored values (their bounds are where the map reaches 0 and 1). That saves
a full-size pass (and a full-size float copy) per frame; the values agree with mapping first
to float32 rounding (tested).
"""

from __future__ import annotations

import numpy as np

from readrace.ingest.dicom import DicomImage

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
    # torch is imported here, not at the top: the index and gather jobs import this module
    # for CACHE_DTYPE only and would otherwise each pay seconds of torch start-up.
    import torch
    import torch.nn.functional as F

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


def cache_pixels(image: DicomImage, size: int, window: dict | None) -> np.ndarray:
    """:func:`to_cache` of a decoded image, mapping after the resize where the map is affine."""
    if image.affines is None:
        return to_cache(image.frames, image.is_ct, size, window)
    frames = []
    for stored, affine in zip(image.pixels, image.affines):
        if image.is_ct:
            if window is None:
                raise ValueError("CT frames need a window (center, width in HU)")
            low = window["center"] - window["width"] / 2.0
            affine = affine.then(1.0 / window["width"], -low / window["width"], clip=True)
        values = stored.astype(np.float32)
        if affine.clip:
            np.clip(values, *affine.stored_bounds(), out=values)
        frames.append(affine.apply(resize_square(values[None], size)[0]))
    return np.clip(np.stack(frames), 0.0, 1.0).astype(CACHE_DTYPE)
