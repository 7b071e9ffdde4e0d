"""JPEG and PNG inputs (MIMIC-CXR-JPG, CheXpert), read into the same shape as a DICOM image.

A raster file carries no header: its patient, study and view come from the dataset's tables
(the adapter's file table). Pixels are taken as display values: 8-bit divided by 255,
16-bit by 65535, so 1 is white as for decoded DICOM. A colour file whose channels differ is
refused, as colour DICOM is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from readrace.ingest.dicom import DicomHeader, DicomImage, DicomReadError

RASTER_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})


def _empty_header(path: Path, rows: int, columns: int) -> DicomHeader:
    return DicomHeader(
        patient_id="", study_uid="", series_uid="", sop_uid="", sop_class_uid="", modality="",
        view_position="", laterality="", manufacturer="", transfer_syntax="", photometric="MONOCHROME2",
        bits_stored=8, rows=rows, columns=columns, n_frames=1, pixel_spacing=None,
        image_position=None, image_orientation=None, instance_number=None,
    )


def read_raster(path: str | Path) -> DicomImage:
    """One grayscale JPEG or PNG as a one-frame image in [0, 1]; DicomReadError says why not."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DicomReadError(f"unreadable image file: {error}"[:160]) from error
    if array.ndim == 3:
        channels = array[..., :3]
        if not (np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(channels[..., 0], channels[..., 2])):
            raise DicomReadError(f"colour image ({mode}) is not supported")
        array = channels[..., 0]
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype in (np.uint16, np.int32) or mode.startswith("I"):
        values = array.astype(np.float32) / 65535.0
    elif array.dtype == bool:
        values = array.astype(np.float32)
    else:
        raise DicomReadError(f"unsupported image mode {mode}")
    if values.min() == values.max():
        raise DicomReadError("constant image (no contrast)")
    return DicomImage(header=_empty_header(path, *values.shape), frames=values[None], is_ct=False)
