"""Stored pixel values of a DICOM data set, decoded only at the resolution the cache needs.

A radiograph of 3000 x 2500 pixels ends in a cache of 224 or 320. Two codecs can decode a
smaller image directly, for a fraction of the work:

- JPEG 2000 (lossless and lossy, and High-Throughput JPEG 2000) holds the image as wavelet
  resolution levels: level r is the image low-pass filtered and halved r times, and decoding
  it skips the entropy decoding of every finer level;
- JPEG (the DCT processes, 8-bit: baseline) can run its inverse DCT at 1/2, 1/4 or 1/8 scale
  (Pillow's draft mode, libjpeg-turbo's DCT scaling), each output pixel the low-pass of its
  block.

:func:`stored_frames` decodes at the smallest such scale whose rows and columns are both at
least ``min_size`` (readrace asks for twice the cache size, so that the antialiased resize
that follows still has a margin of a factor 2 below its own cut-off); the frames' values stay
stored values, so the modality and VOI LUTs apply to them as to a full decode. Every other
case (uncompressed data, lossless JPEG, JPEG-LS, RLE, multi-frame, signed, colour, an
unexpected codestream) is decoded in full; any failure of a reduced decode is retried in full,
so that the full decoder names the problem.

Uncompressed little-endian data of 8 or 16 bits, one sample per pixel, is read straight from
the element's bytes (no copy; unused high bits cleared as pydicom clears them), which saves
pydicom's decoder set-up on small files: identical values, tested against ``pixel_array``.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import openjpeg
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import (
    UID,
    HTJ2K,
    JPEG2000,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)

from readrace.ingest.elements import int_value

__all__ = ["StoredFrames", "jpeg2000_levels", "reduction", "reduction_factor", "stored_frames"]

_JPEG2000 = frozenset({JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K})
#: DCT-based JPEG that Pillow decodes (8-bit samples: process 1, and process 2/4 files of 8 bits).
_JPEG_DCT = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit})
_NATIVE_LITTLE_ENDIAN = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
#: The largest DCT scaling libjpeg offers: 1/8.
_JPEG_MAX_FACTOR = 8
_SOC_SIZ = b"\xff\x4f\xff\x51"
#: What Pillow and openjpeg raise on a stream they cannot decode (Pillow's UnidentifiedImageError
#: and decoder errors are OSErrors; openjpeg raises RuntimeError).
_CODEC_ERRORS = (OSError, ValueError, RuntimeError, EOFError, struct.error)
_COD, _COC, _SOT = 0xFF52, 0xFF53, 0xFF90


@dataclass(frozen=True)
class StoredFrames:
    """Stored values ``(n_frames, rows, columns[, samples])`` and the factor (a power of two)
    by which they were reduced in each dimension (1 for a full decode)."""

    array: np.ndarray
    factor: int


def stored_frames(ds: Dataset, syntax: str, min_size: int | None) -> StoredFrames:
    """The data set's stored pixel values, reduced when ``min_size`` allows (see the module
    docstring). Errors are those of ``ds.pixel_array`` (the caller turns them into reasons)."""
    syntax = UID(syntax)
    encapsulated = _single_grey_frame(ds, syntax)
    if encapsulated is not None:
        decoded = _decode_frame(encapsulated, syntax, ds, min_size)
        if decoded is not None:
            return decoded
    native = _native_frames(ds, syntax)
    if native is not None:
        return StoredFrames(native, 1)
    pixels = np.asarray(ds.pixel_array)
    n_frames = _int(ds, "NumberOfFrames", 1)
    samples = _int(ds, "SamplesPerPixel", 1)
    shape = (n_frames, _int(ds, "Rows", 0), _int(ds, "Columns", 0)) + ((samples,) if samples > 1 else ())
    return StoredFrames(pixels.reshape(shape) if pixels.size == np.prod(shape) else pixels, 1)


def reduction(rows: int, columns: int, min_size: int, max_steps: int) -> int:
    """The most halvings (at most ``max_steps``) that keep both sides at least ``min_size``;
    a side of n pixels halved r times has ceil(n / 2**r) pixels, as the codecs round."""
    steps = 0
    while steps < max_steps and -(-min(rows, columns) // 2 ** (steps + 1)) >= min_size:
        steps += 1
    return steps


def reduction_factor(full: int, reduced: int) -> int:
    """The power of two a side of ``full`` pixels was divided by to give ``reduced`` (the
    codecs round up: ceil(full / 2**r), so the ratio is only close to 2**r)."""
    return 2 ** round(np.log2(full / reduced))


def jpeg2000_levels(codestream: bytes) -> tuple[int, int, bool] | None:
    """(decomposition levels, bit depth, signed) of a JPEG 2000 codestream's single
    component, from its main header (SIZ, COD and any COC); None when it is not a codestream
    of one component readrace can read that way (a JP2 box wrapper is skipped)."""
    start = codestream.find(_SOC_SIZ)
    if start < 0:
        return None
    position = start + 2
    levels: list[int] = []
    depth, signed = 0, False
    while position + 4 <= len(codestream):
        marker = int.from_bytes(codestream[position : position + 2], "big")
        length = int.from_bytes(codestream[position + 2 : position + 4], "big")
        segment = codestream[position + 4 : position + 2 + length]
        if marker == 0xFF51:  # SIZ: Rsiz, sizes and offsets (32 bytes), Csiz, then Ssiz per component
            if len(segment) < 37 or int.from_bytes(segment[34:36], "big") != 1:
                return None
            depth, signed = (segment[36] & 0x7F) + 1, bool(segment[36] & 0x80)
        elif marker == _COD and len(segment) >= 6:  # Scod, progression, layers (2), MCT, levels
            levels.append(segment[5])
        elif marker == _COC and len(segment) >= 3:  # Ccoc (1 byte for < 257 components), Scoc, levels
            levels.append(segment[2])
        elif marker == _SOT or length < 2:
            break
        position += 2 + length
    if not levels or not depth:
        return None
    return min(levels), depth, signed


def _single_grey_frame(ds: Dataset, syntax: UID) -> bytes | None:
    """The one encapsulated frame of an unsigned, one-sample JPEG 2000 or DCT JPEG image."""
    if syntax not in _JPEG2000 and syntax not in _JPEG_DCT:
        return None
    if _int(ds, "NumberOfFrames", 1) != 1 or _int(ds, "SamplesPerPixel", 1) != 1:
        return None
    if _int(ds, "PixelRepresentation", 1) != 0 or "PixelData" not in ds:
        return None
    try:
        return next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception:  # noqa: BLE001 - pydicom's decoder will say what is wrong
        return None


def _decode_frame(frame: bytes, syntax: UID, ds: Dataset, min_size: int | None) -> StoredFrames | None:
    """The frame decoded at the scale ``min_size`` allows; a JPEG 2000 frame at full size is
    decoded by openjpeg (as pydicom would, without its decoder set-up); None when pydicom's
    full decoder is needed."""
    rows, columns, bits = _int(ds, "Rows", 0), _int(ds, "Columns", 0), _int(ds, "BitsStored", 0)
    try:
        if syntax in _JPEG2000:
            parameters = jpeg2000_levels(frame)
            if parameters is None or parameters[1:] != (bits, False):
                return None  # signed, or a precision other than BitsStored: pydicom corrects those
            array = None if min_size is None else _jpeg2000_reduced(frame, rows, columns, bits, parameters[0], min_size)
            if array is None:
                array = _jpeg2000_full(frame, rows, columns)
        else:
            array = None if min_size is None else _jpeg_reduced(frame, rows, columns, bits, min_size)
    except _CODEC_ERRORS:  # the full decoder will say what is wrong with the frame
        return None
    if array is None:
        return None
    return StoredFrames(array[None], reduction_factor(rows, array.shape[0]))


def _jpeg2000_full(frame: bytes, rows: int, columns: int) -> np.ndarray | None:
    array = openjpeg.decode(frame)
    return array if array.shape == (rows, columns) else None


def _jpeg2000_reduced(frame: bytes, rows: int, columns: int, bits: int, levels: int, min_size: int) -> np.ndarray | None:
    """The frame at the coarsest of its ``levels`` that ``min_size`` allows (unsigned samples
    of ``bits`` bits: checked by the caller), or None when no level is coarse enough."""
    steps = reduction(rows, columns, min_size, levels)
    if steps == 0 or bits > 16:
        return None
    with Image.open(io.BytesIO(frame)) as image:
        image.reduce = steps
        image.load()
        array = np.asarray(image)
    if array.shape != (-(-rows // 2**steps), -(-columns // 2**steps)):
        return None
    # Pillow returns samples of 9 to 16 bits scaled to 16 bits (shifted left): shift back.
    return array >> (16 - bits) if array.dtype == np.uint16 else array


def _jpeg_reduced(frame: bytes, rows: int, columns: int, bits: int, min_size: int) -> np.ndarray | None:
    steps = reduction(rows, columns, min_size, int(np.log2(_JPEG_MAX_FACTOR)))
    if steps == 0 or bits != 8:
        return None
    with Image.open(io.BytesIO(frame)) as image:
        if image.mode != "L":
            return None
        image.draft("L", (-(-columns // 2**steps), -(-rows // 2**steps)))
        image.load()
        array = np.asarray(image)
    if array.shape[0] >= rows:  # the codec did not scale: the full decoder is the reference
        return None
    return array


def _native_frames(ds: Dataset, syntax: UID) -> np.ndarray | None:
    """Uncompressed 8/16-bit little-endian grey frames as a view of the element's bytes, or
    None when pydicom's decoder is needed (other layouts, short data, colour, float)."""
    if syntax not in _NATIVE_LITTLE_ENDIAN or _int(ds, "SamplesPerPixel", 0) != 1:
        return None
    allocated, stored = _int(ds, "BitsAllocated", 0), _int(ds, "BitsStored", 0)
    signed = _int(ds, "PixelRepresentation", -1)
    if allocated not in (8, 16) or not 0 < stored <= allocated or signed not in (0, 1):
        return None
    try:
        data = ds.PixelData
    except Exception:  # noqa: BLE001 - let pydicom's decoder report the element's problem
        return None
    if not isinstance(data, bytes):
        return None
    shape = (_int(ds, "NumberOfFrames", 1), _int(ds, "Rows", 0), _int(ds, "Columns", 0))
    count = shape[0] * shape[1] * shape[2]
    if min(shape) <= 0 or len(data) < count * allocated // 8:
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
    if stored < allocated:
        # As pydicom does: the unused high bits are not part of the value (PS3.5 8.1.1).
        shift = allocated - stored
        if signed:
            array = np.right_shift(np.left_shift(array, shift), shift)
        elif int(array.max()) >> stored:
            array = array & np.array((1 << stored) - 1, dtype=dtype)
    return array


def _int(ds: Dataset, keyword: str, default: int) -> int:
    value = int_value(ds, keyword)
    return default if value is None else value
