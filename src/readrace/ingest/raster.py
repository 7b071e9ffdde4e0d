"""JPEG and PNG inputs (MIMIC-CXR-JPG, CheXpert), and JSRT's raw ``.IMG``, read into the same
shape as a DICOM image.

A raster file carries no header: its patient, study and view come from the dataset's tables
(the adapter's file table). Pixels are taken as display values: 8-bit divided by 255,
16-bit by 65535, so 1 is white as for decoded DICOM. A colour file (RGB, RGBA, a palette)
whose three channels are equal is a grey image and read as one channel; one whose channels
differ is refused, by the same rule as colour DICOM (readrace.ingest.dicom.equal_channels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from readrace.ingest.codecs import reduction_factor
from readrace.ingest.dicom import DicomHeader, DicomImage, DicomReadError, equal_channels
from readrace.ingest.reasons import PIL_MODES, describe, known_term

RASTER_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".img"})
#: JSRT's raw images: 2048 x 2048, 12 bits in big-endian 16-bit words, no header.
JSRT_SHAPE = (2048, 2048)
JSRT_MAX = 4095
_PALETTE_MODES = frozenset({"P", "PA"})
_GREY_ALPHA_MODES = frozenset({"LA", "La"})
#: Modes whose first three channels are red, green and blue (palettes once looked up).
_RGB_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX"}) | _PALETTE_MODES


def _empty_header(path: Path, rows: int, columns: int) -> DicomHeader:
    return DicomHeader(
        patient_id="", study_uid="", series_uid="", sop_uid="", sop_class_uid="", modality="",
        view_position="", laterality="", manufacturer="", transfer_syntax="", photometric="MONOCHROME2",
        bits_stored=8, rows=rows, columns=columns, n_frames=1, pixel_spacing=None,
        image_position=None, image_orientation=None, instance_number=None,
    )


def read_jsrt(path: str | Path) -> DicomImage:
    """A JSRT ``.IMG`` (raw, headerless, module constants) as a one-frame image in [0, 1].
    JSRT stores film density (higher = darker), so the values are inverted, ``1 - v / 4095``,
    as the usual JSRT converters do: 1 is white, as for decoded DICOM."""
    path = Path(path)
    expected = JSRT_SHAPE[0] * JSRT_SHAPE[1] * 2
    size = path.stat().st_size
    if size != expected:
        raise DicomReadError(f"not a JSRT raw image ({size} bytes, expected {expected})")
    raw = np.fromfile(path, dtype=">u2").reshape(JSRT_SHAPE)
    values = 1.0 - np.clip(raw.astype(np.float32), 0, JSRT_MAX) / JSRT_MAX
    if values.min() == values.max():
        raise DicomReadError("constant image (no contrast)")
    header = _empty_header(path, *JSRT_SHAPE)
    return DicomImage(header=header, pixels=values[None], is_ct=False, reduction=1)


def read_raster(path: str | Path, min_size: int | None = None) -> DicomImage:
    """One grayscale JPEG or PNG as a one-frame image in [0, 1]; DicomReadError says why not.

    With ``min_size``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4 or 1/8) whose
    sides are both at least ``min_size`` (readrace.ingest.codecs explains why that is safe);
    the image's ``reduction`` says by how much.
    """
    path = Path(path)
    if path.suffix.lower() == ".img":
        return read_jsrt(path)
    reduction = 1
    try:
        with Image.open(path) as image:
            full_size = image.size
            if min_size is not None:
                image.draft(image.mode, (min_size, min_size))
            image.load()
            if image.size != full_size:
                reduction = reduction_factor(full_size[0], image.size[0])
            mode = image.mode
            if mode in _PALETTE_MODES:  # palette indices are not grey levels: look them up
                image = image.convert("RGB")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        # PIL's message names the file ("cannot identify image file '/...'"): private.
        raise DicomReadError("unreadable image file", describe(error)) from error
    if mode in _GREY_ALPHA_MODES:
        array = array[..., 0]  # the alpha channel says nothing about the image
    elif array.ndim == 3:
        grey = equal_channels(array) if mode in _RGB_MODES else None
        if grey is None:
            raise DicomReadError(f"colour image ({known_term(mode, PIL_MODES) or 'unrecognised mode'}) is not supported")
        array = grey
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype in (np.uint16, np.int32) or mode.startswith("I"):
        values = array.astype(np.float32) / 65535.0
    elif array.dtype == bool:
        values = array.astype(np.float32)
    else:
        raise DicomReadError(f"unsupported image mode {known_term(mode, PIL_MODES) or '(unrecognised)'}")
    if values.min() == values.max():
        raise DicomReadError("constant image (no contrast)")
    header = _empty_header(path, *full_size[::-1])
    return DicomImage(header=header, pixels=values[None], is_ct=False, reduction=reduction)
