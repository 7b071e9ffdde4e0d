"""Robust DICOM decoding: one file in, one grayscale image or one quarantine reason out.

Ingestion calls :func:`read_dicom` once per file of a real DICOM tree (MIMIC-CXR, NLST, PACS
exports, ...). It returns a :class:`DicomImage`, or raises :class:`DicomReadError` whose
``reason`` goes into the dataset's quarantine list. No other exception leaves this module,
whatever the file: a library traceback here would be a bug.

Decoding rules
--------------
Reading
    One ``pydicom.dcmread`` per call. A file without preamble and file meta is read with
    ``force=True`` only when its first tag is plausibly a DICOM group (0002 or 0008, either
    byte order); anything else is "not a DICOM file". When the file meta has no Transfer
    Syntax UID, pixels are decoded with the native syntax pydicom inferred while parsing
    (the header still reports ""); encapsulated pixel data without one cannot be decoded.
    pydicom warnings are silenced: a file either decodes or gets a reason.
Pixels
    ``ds.pixel_array`` with the installed handlers (numpy; pylibjpeg with libjpeg, openjpeg
    and rle; pydicom's RLE). Single- and multi-frame; frames come back as float32
    ``(n_frames, rows, columns)``. MONOCHROME1/MONOCHROME2 with one sample per pixel are
    grayscale images.
Colour-stored grayscale
    RGB, and YBR_FULL / YBR_FULL_422 (which pydicom converts to RGB), with three samples per
    pixel: a grey image stored as colour, as digitised films often are, has three equal
    channels after the conversion. Such a file is read as one channel of display values,
    ``stored / (2**BitsStored - 1)`` in [0, 1] (no modality or VOI LUT applies to colour
    data), with the same constant-frame check. A file whose channels differ anywhere is
    "colour image (RGB) is not supported", as are PALETTE COLOR and the other colour models,
    and colour CT (no Hounsfield units). Lossy YBR compression (JPEG baseline) rarely keeps
    the chroma exactly neutral, so such a grey image is usually refused as colour: the
    error is on the safe side. JPEG/PNG inputs (readrace.ingest.raster) follow the same rule.
CT (Modality "CT")
    Modality LUT only (RescaleSlope/RescaleIntercept or Modality LUT Sequence, via
    ``pydicom.pixels.apply_modality_lut``): frames are Hounsfield units, no VOI, no
    normalisation, ``is_ct=True``.
Everything else (CR, DX, MG, MR, ...)
    Modality LUT, then the first VOI transform if there is one (VOI LUT Sequence preferred,
    else the first WindowCenter/WindowWidth with its VOILUTFunction, via
    ``pydicom.pixels.apply_voi_lut``). The VOI output *range* is scaled to [0, 1]: the
    window's [y_min, y_max], or the min and max of the LUT's entries. The data's own min and
    max play no part, so a window that covers more than the data gives values inside
    (0, 1). Without a VOI transform, or with an unusable one (width < 1, unknown function,
    malformed LUT), each frame is min-max normalised to [0, 1]. Finally MONOCHROME1 frames
    become ``1 - x``, so that 1 is white on a display for every image.
Enhanced (multi-frame functional group) objects
    When RescaleSlope/Intercept, WindowCenter/Width or VOILUTFunction are not at the top
    level, the per-frame functional group value (else the shared one) is used for each frame.
Constant frames
    A frame whose values (after the modality LUT, or after the VOI window) are all equal is
    "constant image (no contrast)".

Reasons (each starts with a stable category phrase)
    "not a DICOM file", "cannot read file: <OS error text>", "truncated or corrupt file: ...",
    "no pixel data (SOP class <name>)", "non-image SOP class (<name>)",
    "missing required attributes: <keywords>", "invalid image attributes: ...",
    "colour image (<photometric>) is not supported", "unsupported photometric
    interpretation <term>", "cannot decode transfer syntax <name>", "constant image (no
    contrast)", "unexpected error" (a safety net; seeing it means this module needs a new
    rule). order_ct_slices adds "mixed orientations in series", "duplicate slice positions
    ...", "duplicate InstanceNumber ..." and "cannot order slices: ...".
    A reason holds only fixed text and safe values (readrace.ingest.reasons): registered UID
    names, DICOM defined terms, integers. The library message, an unregistered UID or an
    unknown header value goes to the error's private ``detail``.

Speed
    One read (through a 1 MiB buffer), one decode, at reduced resolution when the caller
    allows it (``min_size``; readrace.ingest.codecs: JPEG 2000 resolution levels, JPEG DCT
    scaling; never for an image whose display is min-max normalised). Uncompressed grey
    frames are read as a view of the file's bytes, a single JPEG 2000 frame is decoded by
    openjpeg without pydicom's decoder set-up, and the attributes are read from their raw
    bytes (readrace.ingest.elements): each gives what pydicom gives (tested on its corpus).
    The common modality + window transform is an :class:`Affine` kept beside the stored
    values, so that the cache is made by resizing them and mapping the small result
    (readrace.ingest.preprocess.cache_pixels); a sigmoid window is evaluated once per stored
    value in the frame's range and gathered; LUT sequences go through pydicom's functions.

The header deliberately carries the raw PatientID (for joining tables; the caller
pseudonymises it at once) and no other identifying attribute: no names, birth dates,
addresses or free text.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ParametricMapStorage,
    RTDoseStorage,
    SegmentationStorage,
)

from readrace.ingest.codecs import stored_frames
from readrace.ingest.elements import element_value, int_value
from readrace.ingest.reasons import (
    MAX_DETAIL_LENGTH,
    MAX_REASON_LENGTH,
    PHOTOMETRIC_INTERPRETATIONS,
    describe,
    known_term,
    one_line,
    uid_name,
)

__all__ = [
    "DicomHeader",
    "DicomImage",
    "DicomReadError",
    "equal_channels",
    "order_ct_slices",
    "read_dicom",
    "read_header",
]

_NATIVE_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)
#: (is_implicit_VR, is_little_endian) as parsed -> the native syntax it implies.
_SYNTAX_OF_ENCODING = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}
#: SOP classes whose pixel data is not a picture of the patient (dose grids, label maps,
#: computed parameter maps). Unknown and private SOP classes are given the benefit of doubt.
_NON_IMAGE_SOP_CLASSES = frozenset({RTDoseStorage, SegmentationStorage, ParametricMapStorage})
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = frozenset({"RGB", "PALETTE COLOR", "HSV", "ARGB", "CMYK"})
#: Colour models whose pixels pydicom hands back as RGB (it converts YBR_FULL and
#: YBR_FULL_422): a grey image stored in them has three equal channels.
_RGB_DECODED = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422"})
#: First groups a headerless (no preamble, no file meta) DICOM stream can start with.
_HEADERLESS_FIRST_GROUPS = frozenset({0x0002, 0x0008})
#: Attributes whose per-frame value may live in the functional groups of enhanced objects.
_FRAME_KEYWORDS = (
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
)
#: Slices closer than this along the normal (mm) are the same position; DS values carry
#: about 1e-4 mm of rounding, the thinnest CT slices are ~0.5 mm apart.
_SAME_POSITION_MM = 1e-3
#: Direction cosines that differ by less than this are the same orientation.
_SAME_ORIENTATION = 1e-4
#: The only BaseExceptions let through. Everything else becomes a reason, because the
#: Rust decoders (pylibjpeg-rle via pyo3) report a panic on a corrupt stream as
#: pyo3_runtime.PanicException, a BaseException that ``except Exception`` misses.
_INTERRUPTS = (KeyboardInterrupt, SystemExit)


class DicomReadError(Exception):
    """A file that cannot become an image: a public ``reason`` and a private ``detail``.

    The reason starts with a stable category phrase (see the module docstring), is one line
    of at most :data:`MAX_REASON_LENGTH` characters, and holds only fixed text and safe
    values: it goes verbatim into the public quarantine list and the summary. The detail
    (the library's message, an unknown header value: either can name the file or the
    patient) goes only to the private quarantine list. ``str()`` is the reason, so that a
    stray log line cannot carry the detail.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        reason = one_line(reason, MAX_REASON_LENGTH)
        detail = one_line(detail, MAX_DETAIL_LENGTH) if detail else ""
        super().__init__(reason, detail)  # both in args: the error pickles whole
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class DicomHeader:
    """The attributes ingestion needs, read without decoding pixels.

    Missing text attributes are ``""``, missing Rows/Columns/BitsStored are ``0`` and missing
    geometry is ``None``. ``patient_id`` is the raw PatientID: join key only, pseudonymised
    by the caller. ``transfer_syntax`` is the file meta's UID string ("" when absent).
    ``laterality`` is ImageLaterality, else Laterality. ``pixel_spacing`` is PixelSpacing,
    else the detector-plane ImagerPixelSpacing of projection radiographs. Enhanced objects
    without top-level geometry report frame 0's functional-group values.
    """

    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    modality: str
    view_position: str
    laterality: str
    manufacturer: str
    transfer_syntax: str
    photometric: str
    bits_stored: int
    rows: int
    columns: int
    n_frames: int
    pixel_spacing: tuple[float, float] | None
    image_position: tuple[float, float, float] | None
    image_orientation: tuple[float, ...] | None
    instance_number: int | None


@dataclass(frozen=True)
class Affine:
    """Values as ``gain * stored + offset``, clipped to [0, 1] when ``clip``: the common
    modality + VOI transform (and MONOCHROME1's inversion) of one frame."""

    gain: float
    offset: float
    clip: bool

    def apply(self, stored: np.ndarray) -> np.ndarray:
        """The values of ``stored`` as float32, computed in float64 (as pydicom's LUT
        functions compute) by blocks of rows, so that no float64 copy of a radiograph's frame
        (tens of megabytes) is ever made."""
        out = np.empty(stored.shape, dtype=np.float32)
        block = max(1, _AFFINE_BLOCK // max(1, stored[0].size))
        for start in range(0, len(stored), block):
            values = np.multiply(stored[start : start + block], self.gain, dtype=np.float64)
            values += self.offset
            if self.clip:
                np.clip(values, 0.0, 1.0, out=values)
            out[start : start + block] = values
        return out

    def then(self, gain: float, offset: float, clip: bool) -> Affine:
        """This map followed by ``gain * x + offset`` (clipped when ``clip``); only an
        unclipped map can be followed."""
        if self.clip:
            raise ValueError("a clipped map cannot be composed")
        return Affine(self.gain * gain, self.offset * gain + offset, clip)

    def stored_bounds(self) -> tuple[float, float]:
        """The stored values the map sends to 0 and 1, in increasing order: clipping the
        stored values there and mapping after is the same as mapping and clipping, and it
        commutes with a resize whose weights sum to 1 (readrace.ingest.preprocess)."""
        ends = (-self.offset / self.gain, (1.0 - self.offset) / self.gain)
        return min(ends), max(ends)


#: Pixels per block of :meth:`Affine.apply` (a float64 block of 512 KiB stays in the CPU cache).
_AFFINE_BLOCK = 1 << 16


@dataclass(frozen=True)
class DicomImage:
    """A decoded image: float32 :attr:`frames` of shape ``(n_frames, rows, columns)``.

    ``is_ct`` is True when the frames are Hounsfield units (modality LUT only); otherwise
    they are display values in [0, 1] with 1 white. ``reduction`` is the factor (a power of
    two) by which the frames are smaller than the header's Rows and Columns: 1 unless the
    image was decoded at a reduced resolution (readrace.ingest.codecs).

    ``pixels`` are the frames themselves, or, when ``affines`` is given, their stored values,
    frame i's values being ``affines[i].apply(pixels[i])``: so that the cache can be made by
    resizing the stored values and mapping the small result (readrace.ingest.preprocess),
    which saves a pass over a full-size frame.
    """

    header: DicomHeader
    pixels: np.ndarray
    is_ct: bool
    reduction: int = 1
    affines: tuple[Affine, ...] | None = None

    @cached_property
    def frames(self) -> np.ndarray:
        if self.affines is None:
            return self.pixels
        return np.stack([affine.apply(frame) for affine, frame in zip(self.affines, self.pixels)])


def read_header(path: str | Path) -> DicomHeader:
    """Read the header of ``path`` without decoding pixel data.

    Lenient about image attributes (a text SR still has a header); raises
    :class:`DicomReadError` only when the file cannot be read as DICOM at all.
    """
    with _quiet():
        ds = _read_dataset(Path(path), stop_before_pixels=True)
        try:
            return _header(ds)
        except _INTERRUPTS:
            raise
        except BaseException as exc:  # the header getters are defensive; this is a safety net
            raise DicomReadError("unexpected error", describe(exc)) from exc


def read_dicom(path: str | Path, min_size: int | None = None) -> DicomImage:
    """Read and decode ``path`` following the module's decoding rules.

    With ``min_size``, a JPEG 2000 or JPEG image may be decoded at a reduced resolution whose
    rows and columns are both at least ``min_size`` (readrace.ingest.codecs; the image's
    ``reduction`` says by how much). Raises :class:`DicomReadError` (and nothing else) when
    the file cannot become a grayscale image.
    """
    path = Path(path)
    with _quiet():
        ds = _read_dataset(path, stop_before_pixels=False)
        try:
            return _decode(ds, path, min_size)
        except (DicomReadError, *_INTERRUPTS):
            raise
        except BaseException as exc:
            raise DicomReadError("unexpected error", describe(exc)) from exc


def order_ct_slices(headers: Sequence[DicomHeader]) -> list[int]:
    """Return the indices that sort one series' slices along the slice normal.

    The sort key is ImagePositionPatient projected on ``cross(row, column)`` of
    ImageOrientationPatient (ascending, as GDCM/SimpleITK order a series). When any slice
    lacks position or orientation, InstanceNumber is used instead. Raises
    :class:`DicomReadError` on mixed orientations, duplicate positions, duplicate or
    missing instance numbers.
    """
    if not headers:
        return []
    has_geometry = all(
        h.image_position is not None
        and h.image_orientation is not None
        and len(h.image_orientation) == 6
        for h in headers
    )
    if has_geometry:
        orientations = np.array([h.image_orientation for h in headers], dtype=np.float64)
        if not np.allclose(orientations, orientations[0], rtol=0.0, atol=_SAME_ORIENTATION):
            raise DicomReadError("mixed orientations in series: cannot stack slices")
        normal = np.cross(orientations[0, :3], orientations[0, 3:])
        if np.linalg.norm(normal) < 1e-6:
            raise DicomReadError("invalid image attributes: degenerate ImageOrientationPatient")
        positions = np.array([h.image_position for h in headers], dtype=np.float64)
        distances = positions @ normal
        order = np.argsort(distances, kind="stable")
        gaps = np.diff(distances[order])
        if gaps.size and gaps.min() < _SAME_POSITION_MM:
            k = int(np.argmin(gaps))
            raise DicomReadError(
                f"duplicate slice positions in series: slices {int(order[k])} and {int(order[k + 1])}",
                f"both at {distances[order[k]]:.3f} mm along the normal",
            )
        return [int(i) for i in order]

    numbers = [h.instance_number for h in headers]
    if any(n is None for n in numbers):
        raise DicomReadError(
            "cannot order slices: neither position/orientation nor InstanceNumber on every slice"
        )
    if len(set(numbers)) != len(numbers):
        raise DicomReadError("duplicate InstanceNumber in series: cannot order slices")
    return sorted(range(len(numbers)), key=lambda i: numbers[i])


# --------------------------------------------------------------------------- reading


@contextmanager
def _quiet() -> Iterator[None]:
    # pydicom warns about every non-conformance; a file either decodes or gets a reason, and
    # a caller running with warnings-as-errors must not see library warnings escape.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _read_dataset(path: Path, stop_before_pixels: bool) -> Dataset:
    try:
        try:
            ds = _dcmread(path, stop_before_pixels)
        except InvalidDicomError:
            if not _looks_like_headerless_dicom(path):
                raise DicomReadError("not a DICOM file") from None
            ds = _dcmread(path, stop_before_pixels, force=True)
        if len(ds) == 0:
            if "TransferSyntaxUID" in getattr(ds, "file_meta", {}):
                # A valid file meta followed by nothing pydicom could keep: pydicom drops
                # a data set whose encapsulated pixel data runs past the end of the file.
                raise DicomReadError("truncated or corrupt file: no readable data set after the file meta")
            raise DicomReadError("not a DICOM file")
        return ds
    except (DicomReadError, *_INTERRUPTS):
        raise
    except OSError as exc:
        if exc.errno is not None:  # the file system's refusal (missing, directory, permission)
            # The OS's text for the error number, never the exception's message (it names
            # the file).
            known = exc.errno in errno.errorcode
            raise DicomReadError(
                f"cannot read file: {os.strerror(exc.errno) if known else 'operating system error'}",
                describe(exc),
            ) from exc
        # pydicom also raises a bare OSError for unparseable content: a corrupt file.
        raise DicomReadError(_CORRUPT_DATA_SET, describe(exc)) from exc
    except BaseException as exc:
        raise DicomReadError(_CORRUPT_DATA_SET, describe(exc)) from exc


_CORRUPT_DATA_SET = "truncated or corrupt file: cannot parse the data set"
#: pydicom reads a header in many small reads: with a 1 MiB buffer, a small file takes one
#: system call instead of one per 8 KiB (measured: dcmread ~15% faster on 128 KiB files).
_READ_BUFFER = 1 << 20


def _dcmread(path: Path, stop_before_pixels: bool, force: bool = False) -> Dataset:
    with open(path, "rb", buffering=_READ_BUFFER) as file:
        return dcmread(file, stop_before_pixels=stop_before_pixels, force=force)


def _looks_like_headerless_dicom(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        return False
    return any(
        int.from_bytes(head[:2], order) in _HEADERLESS_FIRST_GROUPS  # type: ignore[arg-type]
        for order in ("little", "big")
    )


def _inferred_syntax(ds: Dataset) -> str | None:
    """The native syntax pydicom parsed a file without (0002,0010) with, if there is one."""
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        return None  # encapsulated: the codec cannot be inferred
    return _SYNTAX_OF_ENCODING.get(tuple(ds.original_encoding))


# --------------------------------------------------------------------------- decoding


def _decode(ds: Dataset, path: Path, min_size: int | None) -> DicomImage:
    has_pixels = any(keyword in ds for keyword in _PIXEL_KEYWORDS)
    # Checked before _header(), which converts the raw elements this check needs.
    if not has_pixels and _ends_inside_element(ds, path):
        raise DicomReadError("truncated or corrupt file: file ends inside a data element")
    header = _header(ds)
    sop_name = uid_name(header.sop_class_uid) or ("unregistered" if header.sop_class_uid else "missing")
    if not has_pixels:
        raise DicomReadError(
            f"no pixel data (SOP class {sop_name})",
            f"SOPClassUID {header.sop_class_uid!r}" if sop_name == "unregistered" else "",
        )
    if header.sop_class_uid in _NON_IMAGE_SOP_CLASSES:  # registered UIDs: named
        raise DicomReadError(f"non-image SOP class ({sop_name})")

    colour = _check_image_attributes(ds, header)
    syntax = header.transfer_syntax or _inferred_syntax(ds)
    if not syntax:
        raise DicomReadError("cannot decode transfer syntax (missing) of encapsulated pixel data")
    if not header.transfer_syntax:
        ds.file_meta.TransferSyntaxUID = syntax  # where pixel decoding looks for it

    try:
        reducible = not colour and (header.modality == "CT" or not _display_is_min_max(ds))
        decoded = stored_frames(ds, syntax, min_size if reducible else None)
    except _INTERRUPTS:
        raise
    except BaseException as exc:  # see _INTERRUPTS: native decoders may panic
        if UID(syntax) in _NATIVE_SYNTAXES:
            raise DicomReadError(_native_pixel_reason(ds, header, colour), describe(exc)) from exc
        name = uid_name(syntax)
        detail = describe(exc) if name else f"TransferSyntaxUID {syntax!r}; {describe(exc)}"
        raise DicomReadError(f"cannot decode transfer syntax {name or '(unregistered)'}", detail) from exc

    pixels, factor = decoded.array, decoded.factor
    samples = 3 if colour else 1
    rows, columns = -(-header.rows // factor), -(-header.columns // factor)
    plane = rows * columns * samples
    if pixels.size == 0 or pixels.size % plane:
        raise DicomReadError(
            f"truncated or corrupt file: decoded {pixels.size} values, not a multiple of "
            f"{header.rows}x{header.columns}" + ("x3" if colour else "")
        )
    stack = pixels.reshape(-1, rows, columns, samples)
    if len(stack) != header.n_frames:
        raise DicomReadError(
            f"truncated or corrupt file: decoded {len(stack)} frames, NumberOfFrames is "
            f"{header.n_frames}"
        )
    if colour:
        return DicomImage(header=header, pixels=_colour_stored_grey(stack, header), is_ct=False)
    stack = stack[..., 0]

    is_ct = header.modality == "CT"
    invert = header.photometric == "MONOCHROME1"
    group_keywords = _functional_group_keywords(ds)
    values = []
    for i, stored in enumerate(stack):
        _use_frame_attributes(ds, group_keywords, i)
        values.append(_frame_values(stored, ds, is_ct, invert, i, len(stack)))
    if all(isinstance(value, Affine) for value in values):
        return DicomImage(header=header, pixels=stack, is_ct=is_ct, reduction=factor, affines=tuple(values))
    frames = np.empty(stack.shape, dtype=np.float32)
    for i, value in enumerate(values):
        frames[i] = value.apply(stack[i]) if isinstance(value, Affine) else value
    return DicomImage(header=header, pixels=frames, is_ct=is_ct, reduction=factor)


def _check_image_attributes(ds: Dataset, header: DicomHeader) -> bool:
    """Refuse what cannot be a grayscale image; True when the pixels are stored as colour
    (three samples that decode to RGB) and may turn out grey."""
    required = ["Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation"]
    if "PixelData" in ds:  # the float pixel data variants have no BitsStored/representation
        required += ["BitsStored", "PixelRepresentation"]
    missing = [keyword for keyword in required if _value(ds, keyword) is None]
    if missing:
        raise DicomReadError(f"missing required attributes: {', '.join(missing)}")

    photometric = header.photometric
    named = known_term(photometric, PHOTOMETRIC_INTERPRETATIONS)
    unknown = "" if named else f"PhotometricInterpretation {photometric!r}"
    samples = int_value(ds, "SamplesPerPixel")
    colour = photometric in _COLOUR or photometric.startswith("YBR")
    if colour:
        if photometric not in _RGB_DECODED or samples != 3 or "PixelData" not in ds:
            raise DicomReadError(f"colour image ({named or 'unrecognised'}) is not supported", unknown)
        if header.modality == "CT":
            raise DicomReadError(f"colour image ({named}) is not supported for CT: no Hounsfield units")
    elif photometric not in _GRAYSCALE:
        raise DicomReadError(f"unsupported photometric interpretation {named or '(not a defined term)'}", unknown)
    elif samples != 1:
        raise DicomReadError(f"colour image ({samples} samples per pixel) is not supported")
    if header.rows <= 0 or header.columns <= 0:
        raise DicomReadError(
            f"invalid image attributes: Rows={header.rows}, Columns={header.columns}"
        )
    return colour


def _native_pixel_reason(ds: Dataset, header: DicomHeader, colour: bool) -> str:
    """Why uncompressed pixel data did not decode, in integers only: the library's message
    stays in the detail."""
    data = _value(ds, "PixelData")
    bits = int_value(ds, "BitsAllocated") or 0
    expected = header.rows * header.columns * header.n_frames * (3 if colour else 1) * bits // 8
    if isinstance(data, bytes) and 0 < len(data) < expected:
        return f"truncated or corrupt file: pixel data is {len(data)} bytes, {expected} expected"
    return "truncated or corrupt file: cannot decode the pixel data"


def equal_channels(pixels: np.ndarray) -> np.ndarray | None:
    """The first channel of ``(..., channels)`` colour pixels whose first three channels are
    equal everywhere (a grey image stored as colour), or None when they differ anywhere."""
    first = pixels[..., 0]
    if all(np.array_equal(first, pixels[..., k]) for k in (1, 2)):
        return first
    return None


def _colour_stored_grey(stack: np.ndarray, header: DicomHeader) -> np.ndarray:
    """Display values of ``(n_frames, rows, columns, 3)`` RGB pixels with equal channels:
    stored / (2**BitsStored - 1). Colour data has no modality or VOI LUT to apply."""
    grey = equal_channels(stack)
    if grey is None:
        raise DicomReadError(f"colour image ({header.photometric}) is not supported")
    maximum = 2**header.bits_stored - 1
    if grey.min() < 0 or grey.max() > maximum:
        raise DicomReadError(f"invalid image attributes: colour values outside 0..{maximum} (BitsStored {header.bits_stored})")
    for i, frame in enumerate(grey):
        if frame.min() == frame.max():
            raise DicomReadError(_constant_reason(i, len(grey)))
    return (grey / maximum).astype(np.float32)


def _frame_values(
    stored: np.ndarray, ds: Dataset, is_ct: bool, invert: bool, frame: int, n_frames: int
) -> np.ndarray | Affine:
    """One frame's float32 values: Hounsfield units for CT, else display values in [0, 1].

    The common case (a rescale or none, then a linear window or none) is one affine map of
    the stored values, clipped to [0, 1] for a window, returned as an :class:`Affine` (not
    clipped when no stored value of the frame reaches the window's ends); a sigmoid
    window is evaluated on the table of the frame's stored range and gathered. A Modality
    or VOI LUT Sequence, or values that are not plain numbers, go through pydicom's LUT
    functions (:func:`_lut_values`). Both give the same values (tested).
    """
    rescale = _plain_rescale(ds)
    window = None if is_ct else _plain_window(ds)
    if rescale is None or window is _NOT_PLAIN or stored.dtype.kind not in "iu":
        return _lut_values(stored, ds, is_ct, invert, frame, n_frames)
    slope, intercept, applied = rescale
    low, high = int(stored.min()), int(stored.max())
    # A rescale is monotonic, so the frame's extreme values are those of its extreme stored values.
    ends = np.array([low, high], dtype=np.float64) * slope + intercept
    if not np.isfinite(ends).all():
        raise DicomReadError(f"truncated or corrupt file: non-finite pixel values in frame {frame}")
    if ends[0] == ends[1]:
        raise DicomReadError(_constant_reason(frame, n_frames))
    if is_ct:
        return Affine(slope, intercept, clip=False)
    rising = not applied or slope > 0
    usable = window is not None and _window_fraction(ends, *window, rising=rising) is not None
    if not usable:  # no window, or an unusable one: min-max, as a viewer's auto window
        minimum, maximum = ends.min(), ends.max()
        gain, offset, clip = slope / (maximum - minimum), (intercept - minimum) / (maximum - minimum), False
    elif window[0] in ("LINEAR", "LINEAR_EXACT") and window[2] > (1 if window[0] == "LINEAR" else 0):
        function, center, width = window
        if function == "LINEAR":
            center, width = center - 0.5, width - 1.0
        # ((slope * x + intercept) - center) / width + 0.5, clipped: below and above the
        # window the clip gives the standard's 0 and 1.
        gain, offset, clip = slope / width, (intercept - center) / width + 0.5, True
        if not rising:
            gain, offset = -gain, 1.0 - offset
    else:  # a sigmoid, or a LINEAR step (width 1): on the table of the stored range
        table = np.arange(low, high + 1, dtype=np.float64) * slope + intercept
        display = _window_fraction(table, *window, rising=rising)
        if display.min() == display.max():  # monotonic: the same argument as for the ends
            raise DicomReadError(_constant_reason(frame, n_frames) + " after the VOI window")
        display = (1.0 - display if invert else display).astype(np.float32)
        return display[np.subtract(stored, low, dtype=np.intp)]
    if clip:
        mapped = ends * gain + offset
        if np.ptp(np.clip(mapped, 0.0, 1.0)) == 0:
            raise DicomReadError(_constant_reason(frame, n_frames) + " after the VOI window")
        clip = bool(mapped.min() < 0.0 or mapped.max() > 1.0)
    if invert:
        gain, offset = -gain, 1.0 - offset
    return Affine(gain, offset, clip)


def _display_is_min_max(ds: Dataset) -> bool:
    """True when display values come from the frame's own extremes (no usable VOI), which a
    reduced-resolution decode would change: its extremes are those of a smoothed image."""
    if _voi_kind(ds) == "lut":
        return False
    window = _plain_window(ds)
    if window is None:
        return True
    return window is not _NOT_PLAIN and _window_fraction(np.zeros(1), *window, rising=True) is None


#: A Modality or VOI LUT attribute that only pydicom's LUT functions should interpret.
_NOT_PLAIN = ("not plain",)


def _plain_rescale(ds: Dataset) -> tuple[float, float, bool] | None:
    """(slope, intercept, applied) of a linear modality transform, as pydicom applies it
    (both attributes present); None when there is a Modality LUT Sequence or a value that is
    not one number."""
    if "ModalityLUTSequence" in ds:
        return None
    if "RescaleSlope" not in ds or "RescaleIntercept" not in ds:
        return 1.0, 0.0, False
    slope, intercept = _number(ds, "RescaleSlope"), _number(ds, "RescaleIntercept")
    if slope is None or intercept is None:
        return None
    return slope, intercept, True


def _plain_window(ds: Dataset) -> tuple[str, float, float] | tuple[str] | None:
    """The first window (function, center, width); None without one; :data:`_NOT_PLAIN`
    when pydicom must decide (a VOI LUT Sequence, values that are not numbers)."""
    if "VOILUTSequence" in ds:
        return _NOT_PLAIN
    center, width = _value(ds, "WindowCenter"), _value(ds, "WindowWidth")
    if center is None or width is None:
        return None
    if _value(ds, "BitsStored") is None or _value(ds, "PixelRepresentation") is None:
        return _NOT_PLAIN  # pydicom needs both for its output range
    try:
        center, width = (float(v[0] if isinstance(v, MultiValue | list) else v) for v in (center, width))
    except (TypeError, ValueError, IndexError):
        return _NOT_PLAIN
    function = ds.get("VOILUTFunction", "LINEAR")
    return (function.upper() if isinstance(function, str) else "", center, width)


def _window_fraction(
    values: np.ndarray, function: str, center: float, width: float, rising: bool
) -> np.ndarray | None:
    """A VOI window's output as a fraction of its output range, by PS3.3 C.11.2.1.2 (LINEAR)
    and C.11.2.1.3 (LINEAR_EXACT, SIGMOID), with pydicom's conventions: the range follows
    the rescale, so a negative slope turns it round (``rising`` False). None when the window
    is unusable (a width pydicom refuses, an unknown function)."""
    if function == "SIGMOID":
        if width <= 0:
            return None
        fraction = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    elif function in ("LINEAR", "LINEAR_EXACT"):
        if function == "LINEAR":
            if width < 1:
                return None
            center, width = center - 0.5, width - 1.0
        elif width <= 0:
            return None
        if width == 0:  # LINEAR with width 1: a step at the center
            fraction = (values > center).astype(np.float64)
        else:
            fraction = np.clip((values - center) / width + 0.5, 0.0, 1.0)
            fraction[values <= center - width / 2] = 0.0
            fraction[values > center + width / 2] = 1.0
    else:
        return None
    return fraction if rising else 1.0 - fraction


def _number(ds: Dataset, keyword: str) -> float | None:
    value = _value(ds, keyword)
    if value is None or isinstance(value, MultiValue | list | str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _lut_values(
    stored: np.ndarray, ds: Dataset, is_ct: bool, invert: bool, frame: int, n_frames: int
) -> np.ndarray:
    """:func:`_frame_values` through pydicom's ``apply_modality_lut`` and ``apply_voi_lut``."""
    values = np.asarray(apply_modality_lut(stored, ds))
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise DicomReadError(f"truncated or corrupt file: non-finite pixel values in frame {frame}")
    if values.min() == values.max():
        raise DicomReadError(_constant_reason(frame, n_frames))
    if is_ct:
        return values.astype(np.float32)
    display = _display_values(stored, values, ds)
    if display is None:
        raise DicomReadError(_constant_reason(frame, n_frames) + " after the VOI window")
    return (1.0 - display if invert else display).astype(np.float32)


def _display_values(stored: np.ndarray, values: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """Map one frame to [0, 1]; None when the VOI output is constant.

    ``stored`` are the frame's stored values, ``values`` their modality values.
    """
    voi = _voi_kind(ds)
    if voi is not None:
        try:
            low, high = _voi_output_range(ds, voi)
            if not high > low:
                raise ValueError("empty VOI output range")

            def display(x: np.ndarray) -> np.ndarray:
                out = (_modality_then_voi(x, ds, voi) - low) / (high - low)
                return np.clip(out, 0.0, 1.0, out=out)

            out = _pointwise(display, stored)
        except Exception:
            # Unusable VOI attributes (width < 1, unknown function, malformed LUT): the
            # image is still good, so fall back to min-max like a viewer's auto window.
            pass
        else:
            return None if out.min() == out.max() else out
    values = values.astype(np.float64)
    low, high = values.min(), values.max()
    return (values - low) / (high - low)


def _modality_then_voi(stored: np.ndarray, ds: Dataset, voi: str) -> np.ndarray:
    values = apply_modality_lut(stored, ds)
    if voi == "lut" and values.dtype.kind == "f":
        # A LUT is indexed by integers; rescaled values are integral in practice.
        values = np.rint(values).astype(np.int64)
    return np.asarray(apply_voi_lut(values, ds), dtype=np.float64)


def _pointwise(func: Callable[[np.ndarray], np.ndarray], stored: np.ndarray) -> np.ndarray:
    """``func(stored)`` for a value-wise ``func``, evaluated once per possible stored value.

    pydicom's windowing costs ~0.4 s on a 3000x2500 radiograph; on the table of the frame's
    stored range (at most 65536 entries for 16-bit data) it is negligible, and identical.
    """
    if stored.dtype.kind in "iu":
        low, high = int(stored.min()), int(stored.max())
        if high - low < stored.size:
            table = func(np.arange(low, high + 1, dtype=np.int64))
            return table[np.subtract(stored, low, dtype=np.intp)]
    return func(stored)


def _voi_kind(ds: Dataset) -> str | None:
    # Mirrors apply_voi_lut's choice (LUT preferred over window) so the range matches it.
    sequence = _value(ds, "VOILUTSequence")
    if sequence:
        item = sequence[0]
        if _value(item, "LUTDescriptor") is not None and _value(item, "LUTData") is not None:
            return "lut"
    if _value(ds, "WindowCenter") is not None and _value(ds, "WindowWidth") is not None:
        return "window"
    return None


def _voi_output_range(ds: Dataset, voi: str) -> tuple[float, float]:
    """The range of values the first VOI transform can output (independent of the data)."""
    if voi == "lut":
        entries, first_mapped = ds.VOILUTSequence[0].LUTDescriptor[:2]
        domain = np.arange(first_mapped, first_mapped + (entries or 2**16), dtype=np.int64)
        table = np.asarray(apply_voi_lut(domain, ds))
        return float(table.min()), float(table.max())
    # LINEAR, LINEAR_EXACT and SIGMOID all send -inf and +inf to the ends of their range.
    ends = np.asarray(apply_voi_lut(np.array([-np.inf, np.inf]), ds), dtype=np.float64)
    return float(ends.min()), float(ends.max())


def _constant_reason(frame: int, n_frames: int) -> str:
    where = f" in frame {frame}" if n_frames > 1 else ""
    return f"constant image (no contrast){where}"


def _ends_inside_element(ds: Dataset, path: Path) -> bool:
    """True when the file stops before the end of its last element (cut short)."""
    # pydicom stops quietly at a partial element header and drops an element whose
    # undefined-length value hits end of file; both leave the file longer or shorter than
    # the end of the last element it kept. Offsets of a deflated stream are not file offsets.
    if _value(ds.file_meta, "TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return False
    # keep_deferred: look at the raw elements without converting (and failing on) them.
    elements = (ds.get_item(tag, keep_deferred=True) for tag in ds.keys())
    last = max(elements, key=_value_offset, default=None)
    if not isinstance(last, RawDataElement) or last.length == 0xFFFFFFFF:
        return False  # an undefined-length last element ended on its delimiter
    return last.value_tell + last.length != path.stat().st_size


def _value_offset(element: DataElement | RawDataElement) -> int:
    if isinstance(element, RawDataElement):
        return element.value_tell
    return element.file_tell if element.file_tell is not None else -1


# --------------------------------------------------------------------------- functional groups


def _functional_group_keywords(ds: Dataset) -> tuple[str, ...]:
    """Per-frame attributes to take from the functional groups (absent at the top level)."""
    if "PerFrameFunctionalGroupsSequence" not in ds and "SharedFunctionalGroupsSequence" not in ds:
        return ()
    return tuple(keyword for keyword in _FRAME_KEYWORDS if keyword not in ds)


def _use_frame_attributes(ds: Dataset, keywords: tuple[str, ...], frame: int) -> None:
    # pydicom's LUT functions read top-level attributes, so frame i's values are put there.
    for keyword in keywords:
        value = _functional_group_value(ds, keyword, frame)
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)


def _functional_group_value(ds: Dataset, keyword: str, frame: int) -> Any:
    """``keyword`` from frame's per-frame functional groups, else the shared ones, or None."""
    for sequence_keyword, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        groups = _value(ds, sequence_keyword)
        if not groups or index >= len(groups):
            continue
        try:
            macros = [m for m in groups[index] if m.VR == "SQ" and m.value]
        except Exception:  # a malformed item: treat it as absent, as _value does
            continue
        for macro in macros:
            value = _value(macro.value[0], keyword)
            if value is not None:
                return value
    return None


# --------------------------------------------------------------------------- header


def _header(ds: Dataset) -> DicomHeader:
    spacing = _floats(_value_or_group(ds, "PixelSpacing"), 2)
    if spacing is None:
        # Projection radiographs often carry only the detector-plane spacing.
        spacing = _floats(_value(ds, "ImagerPixelSpacing"), 2)
    position = _floats(_value_or_group(ds, "ImagePositionPatient"), 3)
    return DicomHeader(
        patient_id=_text(ds, "PatientID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        sop_uid=_text(ds, "SOPInstanceUID"),
        sop_class_uid=_text(ds, "SOPClassUID") or _text(ds.file_meta, "MediaStorageSOPClassUID"),
        modality=_text(ds, "Modality").upper(),
        view_position=_text(ds, "ViewPosition").upper(),
        laterality=(_text(ds, "ImageLaterality") or _text(ds, "Laterality")).upper(),
        manufacturer=_text(ds, "Manufacturer"),
        transfer_syntax=_text(ds.file_meta, "TransferSyntaxUID"),
        photometric=_text(ds, "PhotometricInterpretation").upper(),
        bits_stored=int_value(ds, "BitsStored") or 0,
        rows=int_value(ds, "Rows") or 0,
        columns=int_value(ds, "Columns") or 0,
        n_frames=max(int_value(ds, "NumberOfFrames") or 1, 1),
        pixel_spacing=spacing,  # type: ignore[arg-type]
        image_position=position,  # type: ignore[arg-type]
        image_orientation=_floats(_value_or_group(ds, "ImageOrientationPatient"), 6),
        instance_number=int_value(ds, "InstanceNumber"),
    )


def _value(ds: Dataset, keyword: str) -> Any:
    """The value of ``keyword``, or None when absent, empty or unparseable."""
    try:
        value = element_value(ds, keyword)
    except Exception:  # a malformed raw element fails on first access
        return None
    if isinstance(value, str | bytes) and not value.strip():
        return None
    if isinstance(value, MultiValue | list) and len(value) == 0:
        return None
    return value


def _value_or_group(ds: Dataset, keyword: str) -> Any:
    value = _value(ds, keyword)
    return _functional_group_value(ds, keyword, 0) if value is None else value


def _text(ds: Dataset, keyword: str) -> str:
    value = _value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v).strip() for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace").strip("\x00 ")
    return str(value).strip()


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    try:
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(numbers) != n or not all(np.isfinite(numbers)):
        return None
    return numbers

