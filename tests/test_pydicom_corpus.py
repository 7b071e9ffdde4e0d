"""Every file of pydicom's bundled test corpus through readrace.ingest.dicom (no downloads).

The corpus mixes good images of many encodings with colour images, reports, plans, DICOMDIRs,
truncated and deliberately broken files, and non-DICOM files (README, JSON, ICC, gzip). Each
must come back as a finite float32 image or as a DicomReadError with a reason: nothing else.
Run with ``pytest -s`` to see the tally of reasons.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest

from readrace.ingest.dicom import DicomHeader, DicomImage, DicomReadError, read_dicom, read_header

CORPUS = Path(pydicom.data.__file__).parent / "test_files"


#: The category phrases of readrace.ingest.dicom's module docstring, less "unexpected error" (the
#: safety net: a corpus file reaching it means a rule is missing).
CATEGORIES = (
    "not a DICOM file",
    "cannot read file",
    "truncated or corrupt file",
    "no pixel data",
    "non-image SOP class",
    "missing required attributes",
    "invalid image attributes",
    "colour image",
    "unsupported photometric interpretation",
    "cannot decode transfer syntax",
    "constant image",
)


def category(reason: str) -> str:
    """The stable category phrase a reason starts with, or the whole reason."""
    return next((phrase for phrase in CATEGORIES if reason.startswith(phrase)), reason)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, DicomImage | DicomReadError]:
    """Relative path -> what read_dicom returned or raised (anything else fails here)."""
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert len(files) > 150, "pydicom's bundled test files are missing"
    results: dict[str, DicomImage | DicomReadError] = {}
    escaped = []
    for path in files:
        name = path.relative_to(CORPUS).as_posix()
        try:
            results[name] = read_dicom(path)
        except DicomReadError as error:
            results[name] = error
        except BaseException as error:  # noqa: BLE001 - the point is to catch every escape
            escaped.append(f"{name}: {type(error).__name__}: {error}")
    assert not escaped, "exceptions escaped read_dicom:\n" + "\n".join(escaped)

    tally = Counter(
        category(r.reason) for r in results.values() if isinstance(r, DicomReadError)
    )
    decoded = sum(isinstance(r, DicomImage) for r in results.values())
    print(f"\npydicom corpus: {len(results)} files, {decoded} decoded")
    for phrase, count in tally.most_common():
        print(f"  {count:4d}  {phrase}")
    return results


def test_every_file_decodes_or_has_a_reason(outcomes: dict) -> None:
    for name, result in outcomes.items():
        if isinstance(result, DicomImage):
            frames = result.frames
            assert frames.dtype == np.float32 and frames.ndim == 3, name
            header = result.header
            assert frames.shape == (header.n_frames, header.rows, header.columns), name
            assert np.isfinite(frames).all(), name
            if not result.is_ct:
                assert frames.min() >= 0.0 and frames.max() <= 1.0, name
        else:
            assert len(result.reason) <= 160, name
            assert category(result.reason) in CATEGORIES, f"{name}: {result.reason}"
            # Reasons are public: never the file's path or name, whatever the library said.
            assert str(CORPUS) not in result.reason and Path(name).name not in result.reason, result.reason


def test_a_good_number_decode(outcomes: dict) -> None:
    decoded = {name for name, r in outcomes.items() if isinstance(r, DicomImage)}
    # 48 with pylibjpeg installed: the corpus's grayscale images (the rest is colour,
    # non-image or broken on purpose).
    assert len(decoded) >= 45
    for name in (
        "CT_small.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "JPEG2000.dcm",
        "JPGExtended.dcm",
        "image_dfl.dcm",  # deflated transfer syntax
        "dicomdirtests/77654033/CR1/6154",  # MONOCHROME1 CR
    ):
        assert name in decoded, name


def test_ct_small_is_in_hounsfield_units(outcomes: dict) -> None:
    image = outcomes["CT_small.dcm"]
    ds = pydicom.dcmread(CORPUS / "CT_small.dcm")
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert image.is_ct
    np.testing.assert_array_equal(image.frames[0], expected.astype(np.float32))


@pytest.mark.parametrize(
    "name, reason",
    [
        ("README.txt", "not a DICOM file"),
        ("test1.json", "not a DICOM file"),
        ("zipMR.gz", "not a DICOM file"),
        ("crayons.icc", "not a DICOM file"),
        ("reportsi.dcm", "no pixel data (SOP class Basic Text SR Storage)"),
        ("waveform_ecg.dcm", "no pixel data (SOP class 12-lead ECG Waveform Storage)"),
        ("ExplVR_LitEndNoMeta.dcm", "no pixel data (SOP class RT Ion Plan Storage)"),
        ("dicomdirtests/DICOMDIR", "no pixel data (SOP class Media Storage Directory Storage)"),
        ("rtdose.dcm", "non-image SOP class (RT Dose Storage)"),
        ("liver_1frame.dcm", "non-image SOP class (Segmentation Storage)"),
        ("examples_palette.dcm", "colour image (PALETTE COLOR) is not supported"),
        ("examples_ybr_color.dcm", "colour image (YBR_FULL_422) is not supported"),
        ("SC_rgb_rle_2frame.dcm", "colour image (RGB) is not supported"),
        ("MR_truncated.dcm", "truncated or corrupt file: pixel data is 8130 bytes, 8192 expected"),
        ("JPEG-lossy.dcm", "cannot decode transfer syntax JPEG Extended (Process 2 and 4)"),
        ("rtplan_truncated.dcm", "truncated or corrupt file: "),
        ("nested_priv_SQ.dcm", "missing required attributes: Rows, Columns"),
    ],
)
def test_known_reasons(outcomes: dict, name: str, reason: str) -> None:
    result = outcomes[name]
    assert isinstance(result, DicomReadError), name
    assert result.reason.startswith(reason), result.reason


def test_library_messages_are_kept_as_private_details(outcomes: dict) -> None:
    assert "8130 vs 8192 bytes" in outcomes["MR_truncated.dcm"].detail
    assert "libjpeg" in outcomes["JPEG-lossy.dcm"].detail
    assert outcomes["reportsi.dcm"].detail == ""  # a registered SOP class needs no detail


def test_read_header_never_escapes() -> None:
    headers = 0
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file()):
        try:
            header = read_header(path)
        except DicomReadError as error:
            assert error.reason
        else:
            assert isinstance(header, DicomHeader)
            headers += 1
    assert headers > 120
