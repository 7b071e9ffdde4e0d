"""The fast paths of DICOM decoding give what pydicom gives, and reduced-resolution decoding
matches a full decode on the cache grid (readrace.ingest.codecs, .elements, .dicom).

Measures of "matches", on the cache grid of values in [0, 1], for a radiograph-like image
(smooth anatomy, ribs, fine texture, noise) decoded at reduced resolution then resized,
against the full decode then resized:
- JPEG (DCT scaling): largest absolute difference <= 0.003, PSNR >= 65 dB;
- JPEG 2000 (resolution levels, 5/3 wavelet): largest absolute difference <= 0.02, PSNR >=
  44 dB, 8-bit and 12-bit;
- both: the spectrum's magnitude below half the cache's Nyquist frequency within 2 % (the
  band the frequency experiments' low-pass results depend on).
Measured on these images: JPEG 0.0015 / 70 dB; JPEG 2000 0.005-0.015 / 46-53 dB; spectra
0.3-1.4 %.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

from conftest import make_dataset, save
from readrace.ingest import codecs, dicom
from readrace.ingest.dicom import DicomReadError, read_dicom
from readrace.ingest.elements import element_value
from readrace.ingest.preprocess import to_cache
from readrace.ingest.raster import read_raster

CORPUS = Path(pydicom.data.__file__).parent / "test_files"
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file())


def radiograph(rows: int, columns: int, bits: int, seed: int = 0) -> np.ndarray:
    """Stored values of a radiograph-like image: body, ribs, fine texture and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:columns] / max(rows, columns)
    body = np.exp(-((xx - 0.5) ** 2 / 0.08 + (yy - 0.5) ** 2 / 0.12))
    ribs = 0.08 * np.sin(2 * np.pi * yy * 18) * body
    texture = 0.03 * np.sin(2 * np.pi * (xx * 61 + yy * 47))
    values = np.clip(0.15 + 0.7 * body + ribs + texture + rng.normal(0, 0.01, (rows, columns)), 0, 1)
    return np.round(values * (2**bits - 1)).astype(np.uint8 if bits == 8 else np.uint16)


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def write_jpeg2000(pixels: np.ndarray, bits: int, path: Path) -> Path:
    ds = make_dataset(pixels, bits_stored=bits, WindowCenter=2 ** (bits - 1), WindowWidth=2**bits)
    ds.compress(JPEG2000Lossless, pixels)
    return save(ds, path)


def write_jpeg_baseline(pixels: np.ndarray, path: Path, window: bool = True) -> Path:
    ds = make_dataset(pixels, **({"WindowCenter": 128, "WindowWidth": 256} if window else {}))
    ds.PixelData = encapsulate([jpeg_bytes(pixels)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return save(ds, path)


def cache_difference(full: np.ndarray, reduced: np.ndarray, size: int) -> dict[str, float]:
    a = to_cache(full, False, size, None)[0].astype(np.float64)
    b = to_cache(reduced, False, size, None)[0].astype(np.float64)
    difference = a - b
    spectrum_a, spectrum_b = np.abs(np.fft.fft2(a)), np.abs(np.fft.fft2(b))
    frequency = np.fft.fftfreq(size)
    radius = np.hypot(*np.meshgrid(frequency, frequency))
    band = (radius > 0) & (radius <= 0.25)  # cycles per pixel: below half the Nyquist frequency
    return {
        "max": float(np.abs(difference).max()),
        "psnr": float(10 * np.log10(1.0 / max(np.mean(difference**2), 1e-20))),
        "spectrum": float(np.abs(spectrum_a - spectrum_b)[band].sum() / spectrum_a[band].sum()),
    }


# --------------------------------------------------------------------------- reduced decoding


@pytest.mark.parametrize("bits", [8, 12])
def test_jpeg2000_decoded_at_a_resolution_level_matches_the_full_decode(tmp_path: Path, bits: int) -> None:
    path = write_jpeg2000(radiograph(1200, 1000, bits), bits, tmp_path / "j2k.dcm")
    full, reduced = read_dicom(path), read_dicom(path, min_size=128)
    # 1000 / 8 = 125 < 128: two levels (factor 4) is the smallest scale that holds 128
    assert (full.reduction, reduced.reduction) == (1, 4)
    assert reduced.frames.shape == (1, 300, 250)
    assert (reduced.header.rows, reduced.header.columns) == (1200, 1000)
    measures = cache_difference(full.frames, reduced.frames, 64)
    assert measures["max"] <= 0.02 and measures["psnr"] >= 44 and measures["spectrum"] <= 0.02, measures


def test_jpeg_decoded_at_a_dct_scale_matches_the_full_decode(tmp_path: Path) -> None:
    pixels = radiograph(1200, 1000, 8)
    dicom_path = write_jpeg_baseline(pixels, tmp_path / "jpeg.dcm")
    raster_path = tmp_path / "image.jpg"
    raster_path.write_bytes(jpeg_bytes(pixels))
    for read in (read_dicom, read_raster):
        path = dicom_path if read is read_dicom else raster_path
        full, reduced = read(path), read(path, min_size=128)
        assert (full.reduction, reduced.reduction) == (1, 4), read
        assert reduced.frames.shape == (1, 300, 250)
        measures = cache_difference(full.frames, reduced.frames, 64)
        assert measures["max"] <= 0.003 and measures["psnr"] >= 65 and measures["spectrum"] <= 0.02, measures


def test_no_reduction_when_half_the_image_is_smaller_than_the_minimum(tmp_path: Path) -> None:
    path = write_jpeg2000(radiograph(300, 250, 12), 12, tmp_path / "small.dcm")
    image = read_dicom(path, min_size=128)  # 250 / 2 = 125 < 128
    assert image.reduction == 1
    np.testing.assert_array_equal(image.frames, read_dicom(path).frames)


def test_an_image_without_a_window_is_decoded_in_full(tmp_path: Path) -> None:
    # Its display values are min-max normalised: the extremes of a smoothed image would differ.
    path = write_jpeg_baseline(radiograph(1200, 1000, 8), tmp_path / "jpeg.dcm", window=False)
    image = read_dicom(path, min_size=128)
    assert image.reduction == 1
    np.testing.assert_array_equal(image.frames, read_dicom(path).frames)


def test_a_corrupt_frame_gets_the_full_decoders_reason(tmp_path: Path) -> None:
    path = write_jpeg2000(radiograph(600, 500, 12), 12, tmp_path / "j2k.dcm")
    ds = pydicom.dcmread(path)
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 3]])
    save(ds, tmp_path / "cut.dcm")
    reasons = set()
    for min_size in (None, 64):
        with pytest.raises(DicomReadError) as error:
            read_dicom(tmp_path / "cut.dcm", min_size=min_size)
        reasons.add(error.value.reason)
    assert len(reasons) == 1 and next(iter(reasons)).startswith("cannot decode transfer syntax JPEG 2000"), reasons


def test_reduction_keeps_both_sides_at_least_the_minimum() -> None:
    assert codecs.reduction(3000, 2500, 640, 5) == 1  # 2500 / 4 = 625 < 640
    assert codecs.reduction(3000, 2500, 448, 5) == 2
    assert codecs.reduction(3000, 2500, 64, 3) == 3  # at most the codestream's levels
    assert codecs.reduction(1001, 1001, 126, 5) == 3  # ceil(1001 / 8) = 126
    assert codecs.reduction(100, 100, 128, 5) == 0


def test_jpeg2000_levels_read_from_the_codestream(tmp_path: Path) -> None:
    ds = pydicom.dcmread(write_jpeg2000(radiograph(200, 160, 12), 12, tmp_path / "j2k.dcm"))
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    levels, depth, signed = codecs.jpeg2000_levels(frame)
    assert (depth, signed) == (12, False) and 1 <= levels <= 32
    assert codecs.jpeg2000_levels(b"not a codestream") is None


# --------------------------------------------------------------------------- fast paths = pydicom


def _read_all(files: list[Path]) -> dict[str, np.ndarray | str]:
    outcomes: dict[str, np.ndarray | str] = {}
    for path in files:
        try:
            outcomes[path.name + str(hash(path))] = read_dicom(path).frames
        except DicomReadError as error:
            outcomes[path.name + str(hash(path))] = error.reason
    return outcomes


def test_fast_paths_give_what_pydicom_gives_on_its_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _read_all(CORPUS_FILES)
    # Without the fast paths: pydicom's pixel_array, apply_modality_lut and apply_voi_lut.
    monkeypatch.setattr(dicom, "_plain_rescale", lambda ds: None)
    monkeypatch.setattr(codecs, "_native_frames", lambda ds, syntax: None)
    monkeypatch.setattr(codecs, "_single_grey_frame", lambda ds, syntax: None)
    reference = _read_all(CORPUS_FILES)
    images = [name for name, outcome in fast.items() if not isinstance(outcome, str)]
    assert len(images) >= 40
    for name in fast:
        a, b = fast[name], reference[name]
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, name
        else:
            assert a.shape == b.shape, name
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0, err_msg=name)


WINDOW_CASES = [
    # (function, center, width, slope, intercept, bits, signed, photometric)
    ("LINEAR", 2048, 1025, 1, 0, 12, 0, "MONOCHROME2"),
    ("LINEAR", 300, 800, 2, -1024, 12, 0, "MONOCHROME1"),
    ("LINEAR", 40, 1, 1, 0, 8, 0, "MONOCHROME2"),  # width 1: a step
    ("LINEAR", 0.5, 0.5, 1, 0, 8, 0, "MONOCHROME2"),  # width < 1: unusable, min-max
    ("LINEAR_EXACT", 100, 300, -1.5, 4000, 12, 0, "MONOCHROME2"),  # negative slope
    ("LINEAR_EXACT", -200, 600, 1, 0, 16, 1, "MONOCHROME2"),
    ("SIGMOID", 2048, 700, 1, 0, 12, 0, "MONOCHROME2"),
    ("SIGMOID", 500, 300, 0.5, 10, 12, 0, "MONOCHROME1"),
    ("UNKNOWN", 10, 10, 1, 0, 12, 0, "MONOCHROME2"),  # unknown function: min-max
    (None, None, None, 3, -7, 12, 0, "MONOCHROME2"),  # no window: min-max
    (None, None, None, -1, 0, 12, 0, "MONOCHROME1"),
]


@pytest.mark.parametrize("function, center, width, slope, intercept, bits, signed, photometric", WINDOW_CASES)
def test_window_and_rescale_as_pydicom_applies_them(
    tmp_path: Path, function, center, width, slope, intercept, bits, signed, photometric
) -> None:
    rng = np.random.default_rng(bits)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    dtype = {8: np.uint8, 12: np.uint16, 16: np.uint16}[bits] if not signed else np.int16
    stored = rng.integers(low, high, size=(40, 30), endpoint=True).astype(dtype)
    attributes = {"RescaleSlope": slope, "RescaleIntercept": intercept}
    if function is not None:
        attributes.update(WindowCenter=center, WindowWidth=width, VOILUTFunction=function)
    path = save(make_dataset(stored, photometric=photometric, bits_stored=bits, **attributes), tmp_path / "w.dcm")
    ds = pydicom.dcmread(path)
    frame = np.asarray(ds.pixel_array)
    fast = dicom._frame_values(frame, ds, False, photometric == "MONOCHROME1", 0, 1)
    if isinstance(fast, dicom.Affine):
        fast = fast.apply(frame)
    reference = dicom._lut_values(frame, ds, False, photometric == "MONOCHROME1", 0, 1)
    assert fast.dtype == reference.dtype == np.float32
    np.testing.assert_allclose(fast, reference, atol=1e-6, rtol=0)
    assert 0.0 <= fast.min() and fast.max() <= 1.0


KEYWORDS = (
    "Rows", "Columns", "BitsStored", "BitsAllocated", "SamplesPerPixel", "PixelRepresentation",
    "NumberOfFrames", "InstanceNumber", "PixelSpacing", "ImagerPixelSpacing", "ImagePositionPatient",
    "ImageOrientationPatient", "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "Modality", "ViewPosition", "ImageLaterality", "PhotometricInterpretation",
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID", "Manufacturer",
)


def _plain(value: object) -> object:
    if isinstance(value, pydicom.multival.MultiValue | list):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return None if value in ("", None) else str(value)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_element_values_equal_pydicoms_on_its_corpus() -> None:
    compared = 0
    for path in CORPUS_FILES:
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:  # noqa: BLE001 - files pydicom cannot read are not the point here
            continue
        for keyword in KEYWORDS:
            try:
                expected = _plain(pydicom.dcmread(path, force=True).get(keyword))
            except Exception as error:  # noqa: BLE001 - then ours must raise too
                with pytest.raises(type(error)):
                    element_value(ds, keyword)
                continue
            assert _plain(element_value(ds, keyword)) == expected, (path.name, keyword)
            compared += expected is not None
    assert compared > 500


CACHE_CASES = [
    # (modality, photometric, window center, window width, slope, intercept)
    ("DX", "MONOCHROME2", 1800, 900, 1, 0),  # the window clips both ends of the data
    ("DX", "MONOCHROME1", 2048, 4096, 1, 0),  # a window covering all the data: no clip
    ("DX", "MONOCHROME2", None, None, 1, 0),  # min-max
    ("CT", "MONOCHROME2", None, None, 1, -1024),  # Hounsfield units, then the CT window
]


@pytest.mark.parametrize("modality, photometric, center, width, slope, intercept", CACHE_CASES)
def test_resizing_stored_values_then_mapping_equals_mapping_then_resizing(
    tmp_path: Path, modality, photometric, center, width, slope, intercept
) -> None:
    from readrace.ingest.preprocess import cache_pixels

    attributes = {"RescaleSlope": slope, "RescaleIntercept": intercept}
    if center is not None:
        attributes.update(WindowCenter=center, WindowWidth=width)
    stored = radiograph(300, 250, 12)
    ds = make_dataset(stored, modality=modality, photometric=photometric, bits_stored=12, **attributes)
    image = read_dicom(save(ds, tmp_path / "image.dcm"))
    assert image.affines is not None
    window = {"center": -600, "width": 1500} if modality == "CT" else None
    lazy = cache_pixels(image, 64, window).astype(np.float32)
    eager = to_cache(image.frames, image.is_ct, 64, window).astype(np.float32)
    # float16 cache values: at most one unit in the last place apart (2**-11 below 1)
    np.testing.assert_allclose(lazy, eager, atol=2**-11, rtol=0)
    assert np.abs(lazy - eager).mean() < 1e-4
