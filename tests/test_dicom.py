"""Known-answer tests of readrace.ingest.dicom on small DICOM files written with pydicom."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    BasicTextSRStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    RTDoseStorage,
    generate_uid,
)

from readrace.ingest.dicom import (
    MAX_REASON_LENGTH,
    DicomHeader,
    DicomReadError,
    order_ct_slices,
    read_dicom,
    read_header,
)

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def make_dataset(
    pixels: np.ndarray,
    *,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    sop_class: str = DigitalXRayImageStorageForPresentation,
    name: str = "image",
    **attributes: object,
) -> Dataset:
    """A minimal image dataset; UIDs derive from ``name`` so every run writes the same bytes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[name])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series"])
    ds.PatientID = "P0001"
    ds.Modality = modality
    pixels = np.asarray(pixels)
    ds.set_pixel_data(
        pixels, photometric, bits_stored or pixels.itemsize * 8, generate_instance_uid=False
    )
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def reason_of(path: Path) -> str:
    with pytest.raises(DicomReadError) as info:
        read_dicom(path)
    return info.value.reason


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 (LINEAR) with output range [0, 1]."""
    c, w = center - 0.5, width - 1
    out = (values - c) / w + 0.5
    out[values <= c - w / 2] = 0.0
    out[values > c + w / 2] = 1.0
    return out


# --------------------------------------------------------------------------- pixel values


def test_ct_rescale_gives_hounsfield_units(tmp_path: Path) -> None:
    stored = np.arange(-8, 8, dtype=np.int16).reshape(4, 4) * 100
    ds = make_dataset(stored, modality="CT", sop_class=CTImageStorage)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400  # must be ignored for CT
    image = read_dicom(save(ds, tmp_path / "ct.dcm"))
    assert image.is_ct
    assert image.frames.dtype == np.float32 and image.frames.shape == (1, 4, 4)
    np.testing.assert_array_equal(image.frames[0], stored * 2.0 - 1024.0)


def test_enhanced_ct_uses_per_frame_rescale_and_plane_position(tmp_path: Path) -> None:
    stored = np.stack([np.arange(16, dtype=np.int16).reshape(4, 4)] * 2)
    ds = make_dataset(stored, modality="CT", sop_class=EnhancedCTImageStorage)

    def group(**values: object) -> Dataset:
        item, inner = Dataset(), Dataset()
        for keyword, value in values.items():
            setattr(inner, keyword, value)
        sequence = "PixelValueTransformationSequence"
        if "ImagePositionPatient" in values:
            sequence = "PlanePositionSequence"
        setattr(item, sequence, Sequence([inner]))
        return item

    ds.SharedFunctionalGroupsSequence = Sequence(
        [group(RescaleSlope=1, RescaleIntercept=-1024, RescaleType="HU")]
    )
    frame0, frame1 = group(ImagePositionPatient=[1, 2, 3]), group(
        RescaleSlope=2, RescaleIntercept=-1000, RescaleType="HU"
    )
    ds.PerFrameFunctionalGroupsSequence = Sequence([frame0, frame1])
    image = read_dicom(save(ds, tmp_path / "enhanced.dcm"))
    np.testing.assert_array_equal(image.frames[0], stored[0] - 1024.0)
    np.testing.assert_array_equal(image.frames[1], stored[1] * 2.0 - 1000.0)
    assert image.header.n_frames == 2
    assert image.header.image_position == (1.0, 2.0, 3.0)


def test_without_voi_each_frame_is_min_max_normalised(tmp_path: Path) -> None:
    stored = np.array([[100, 200], [300, 500]], dtype=np.uint16)
    image = read_dicom(save(make_dataset(stored, bits_stored=12), tmp_path / "dx.dcm"))
    assert not image.is_ct
    np.testing.assert_allclose(image.frames[0], [[0.0, 0.25], [0.5, 1.0]], atol=1e-7)


def test_monochrome1_gradient_comes_back_reversed(tmp_path: Path) -> None:
    gradient = np.tile(np.arange(16, dtype=np.uint16), (3, 1))
    m1 = read_dicom(save(make_dataset(gradient, photometric="MONOCHROME1"), tmp_path / "m1.dcm"))
    m2 = read_dicom(save(make_dataset(gradient, photometric="MONOCHROME2"), tmp_path / "m2.dcm"))
    np.testing.assert_allclose(m1.frames[0, 0], (15 - np.arange(16)) / 15, atol=1e-7)
    np.testing.assert_array_equal(m1.frames[0], m2.frames[0][:, ::-1])


@pytest.mark.parametrize("slope, intercept", [(1, 0), (2, -100)])
def test_linear_window_clips_and_scales_its_output_range(
    tmp_path: Path, slope: int, intercept: int
) -> None:
    stored = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    ds = make_dataset(stored, bits_stored=12, WindowCenter=2048, WindowWidth=1025)
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    image = read_dicom(save(ds, tmp_path / "win.dcm"))
    values = stored.astype(np.float64) * slope + intercept
    expected = linear_window(values, 2048, 1025)
    assert expected.min() == 0.0 and expected.max() == 1.0 and 0 < expected.mean() < 1
    np.testing.assert_allclose(image.frames[0], expected, atol=1e-6)


def test_window_wider_than_the_data_is_not_min_max_stretched(tmp_path: Path) -> None:
    # 4096 pixels over a 501-value range: the table path of readrace.ingest.dicom._pointwise.
    stored = np.random.default_rng(5).integers(1800, 2301, size=(64, 64), dtype=np.uint16)
    ds = make_dataset(stored, bits_stored=12, WindowCenter=2048, WindowWidth=1025)
    frames = read_dicom(save(ds, tmp_path / "wide.dcm")).frames
    expected = linear_window(stored.astype(float), 2048, 1025)
    np.testing.assert_allclose(frames[0], expected, atol=1e-6)
    assert 0.25 < frames.min() < frames.max() < 0.75


def test_sigmoid_window(tmp_path: Path) -> None:
    stored = np.arange(0, 4096, 256, dtype=np.uint16).reshape(4, 4)
    ds = make_dataset(stored, bits_stored=12, WindowCenter=2000, WindowWidth=800)
    ds.VOILUTFunction = "SIGMOID"
    frames = read_dicom(save(ds, tmp_path / "sigmoid.dcm")).frames
    expected = 1.0 / (1.0 + np.exp(-4.0 * (stored - 2000.0) / 800.0))
    np.testing.assert_allclose(frames[0], expected, atol=1e-6)


@pytest.mark.parametrize("slope, intercept", [(1.0, 0.0), (0.25, 60.0)])
def test_voi_lut_sequence_is_scaled_by_the_range_of_its_entries(
    tmp_path: Path, slope: float, intercept: float
) -> None:
    # LUT inputs spread inside the LUT's domain [100, 355]; stored values 4k, 4k+1, 4k+3
    # make the inputs x.0, x.25 or x.75 with slope 0.25 (no rounding ties).
    targets = np.linspace(110, 340, 16)
    stored = 4 * np.floor((targets - intercept) / slope / 4) + np.tile([0, 1, 3, 0], 4)
    stored = stored.astype(np.uint16).reshape(4, 4)
    ds = make_dataset(stored, bits_stored=12, WindowCenter=9999, WindowWidth=2)
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    lut = Dataset()
    lut.add_new("LUTDescriptor", "US", [256, 100, 16])
    lut.add_new("LUTData", "US", [50 + 3 * i for i in range(256)])  # entries span 50 .. 815
    ds.VOILUTSequence = Sequence([lut])  # preferred over the window
    frames = read_dicom(save(ds, tmp_path / "lut.dcm")).frames
    index = np.round(stored * slope + intercept).astype(int) - 100  # nearest LUT input
    entries = 50 + 3 * np.clip(index, 0, 255)
    assert 0 < entries.min() - 50 and entries.max() < 815  # not a min-max stretch
    np.testing.assert_allclose(frames[0], (entries - 50) / 765, atol=1e-6)


def test_unusable_window_falls_back_to_min_max(tmp_path: Path) -> None:
    stored = np.array([[0, 10], [20, 40]], dtype=np.uint16)
    ds = make_dataset(stored, WindowCenter=20, WindowWidth=0)  # LINEAR needs width >= 1
    frames = read_dicom(save(ds, tmp_path / "badwin.dcm")).frames
    np.testing.assert_allclose(frames[0], [[0, 0.25], [0.5, 1]], atol=1e-7)


def test_multiframe_returns_all_frames_in_order(tmp_path: Path) -> None:
    stored = np.stack([np.arange(12, dtype=np.int16).reshape(3, 4) * (k + 1) for k in range(5)])
    ds = make_dataset(stored, modality="CT", sop_class=CTImageStorage)
    image = read_dicom(save(ds, tmp_path / "multi.dcm"))
    assert image.frames.shape == (5, 3, 4) and image.header.n_frames == 5
    np.testing.assert_array_equal(image.frames, stored.astype(np.float32))


# --------------------------------------------------------------------------- compression


@pytest.mark.parametrize(
    "syntax, plugin", [(RLELossless, "pydicom"), (JPEG2000Lossless, "pylibjpeg")]
)
def test_lossless_compression_round_trips_exactly(
    tmp_path: Path, syntax: str, plugin: str
) -> None:
    rng = np.random.default_rng(7)
    stored = rng.integers(-1024, 3000, size=(2, 32, 48), dtype=np.int16)
    ds = make_dataset(stored, modality="CT", sop_class=CTImageStorage)
    ds.compress(syntax, encoding_plugin=plugin, generate_instance_uid=False)
    path = save(ds, tmp_path / "compressed.dcm")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    image = read_dicom(path)
    assert image.header.transfer_syntax == syntax
    np.testing.assert_array_equal(image.frames, stored.astype(np.float32))


@pytest.mark.parametrize(
    "twin",
    [
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless (no encoder installed here)
        "MR_small_jp2klossless.dcm",
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_bundled_encodings_decode_like_the_uncompressed_original(twin: str) -> None:
    original = read_dicom(TEST_FILES / "MR_small.dcm")
    other = read_dicom(TEST_FILES / twin)
    assert other.header.transfer_syntax != original.header.transfer_syntax
    np.testing.assert_array_equal(other.frames, original.frames)
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    assert (ds.WindowCenter, ds.WindowWidth) == (600, 1600)
    expected = linear_window(ds.pixel_array.astype(np.float64), 600, 1600)
    np.testing.assert_allclose(original.frames[0], expected, atol=1e-6)


# --------------------------------------------------------------------------- CT slice order


def write_ct_series(folder: Path, z: np.ndarray, seed: int, orientation: list[float]) -> list[Path]:
    """Slices at distances ``z`` along the normal, in shuffled file names and InstanceNumbers."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    normal = np.cross(orientation[:3], orientation[3:])
    names = rng.permutation(len(z))
    numbers = rng.permutation(len(z)) + 1
    paths = []
    for k, distance in enumerate(z):
        ds = make_dataset(
            np.full((4, 4), k, dtype=np.int16) + np.eye(4, dtype=np.int16),
            modality="CT",
            sop_class=CTImageStorage,
            name=f"slice{k}",
        )
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        position = np.array([-10.0, 5.0, 3.0]) + distance * normal
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.InstanceNumber = int(numbers[k])
        ds.PixelSpacing = [0.5, 0.5]
        paths.append(save(ds, folder / f"file{names[k]:02d}.dcm"))
    return paths


def test_ct_slices_are_ordered_by_position_like_simpleitk(tmp_path: Path) -> None:
    z = np.array([10.0, -5.0, 0.0, 2.5, 30.0, 7.5, -2.5])
    tilt = 0.3  # an oblique plane, so that sorting by z alone would not be enough
    orientation = [1.0, 0.0, 0.0, 0.0, float(np.cos(tilt)), float(-np.sin(tilt))]
    paths = write_ct_series(tmp_path / "series", z, seed=3, orientation=orientation)
    listing = sorted(paths)  # file order unrelated to position
    headers = [read_header(p) for p in listing]
    order = order_ct_slices(headers)
    ordered = [listing[i] for i in order]
    assert ordered == [paths[k] for k in np.argsort(z)]
    reference = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "series"))
    assert [p.name for p in ordered] == [Path(p).name for p in reference]


def test_ct_order_falls_back_to_instance_number() -> None:
    def header(instance: int | None) -> DicomHeader:
        return dataclasses.replace(BLANK_HEADER, instance_number=instance)

    assert order_ct_slices([header(3), header(1), header(2)]) == [1, 2, 0]
    assert order_ct_slices([]) == []
    with pytest.raises(DicomReadError, match="^duplicate InstanceNumber"):
        order_ct_slices([header(1), header(1)])
    with pytest.raises(DicomReadError, match="^cannot order slices"):
        order_ct_slices([header(1), header(None)])


def test_ct_order_rejects_duplicate_positions_and_mixed_orientations() -> None:
    axial = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)

    def header(z: float, orientation: tuple[float, ...] = axial) -> DicomHeader:
        return dataclasses.replace(
            BLANK_HEADER, image_position=(0.0, 0.0, z), image_orientation=orientation
        )

    assert order_ct_slices([header(5.0), header(-5.0), header(0.0)]) == [1, 2, 0]
    with pytest.raises(DicomReadError, match="^duplicate slice positions"):
        order_ct_slices([header(0.0), header(1.0), header(0.0)])
    with pytest.raises(DicomReadError, match="^mixed orientations"):
        order_ct_slices([header(0.0), header(1.0, coronal)])


BLANK_HEADER = DicomHeader(
    patient_id="", study_uid="", series_uid="", sop_uid="", sop_class_uid="", modality="CT",
    view_position="", laterality="", manufacturer="", transfer_syntax="", photometric="",
    bits_stored=0, rows=0, columns=0, n_frames=1, pixel_spacing=None, image_position=None,
    image_orientation=None, instance_number=None,
)  # fmt: skip


# --------------------------------------------------------------------------- header


def test_read_header_known_values_and_no_phi(tmp_path: Path) -> None:
    ds = make_dataset(np.zeros((6, 5), dtype=np.uint16), bits_stored=12, name="hdr")
    ds.PatientName = "Doe^Jane"
    ds.PatientBirthDate = "19700101"
    ds.ViewPosition, ds.ImageLaterality, ds.Manufacturer = "PA", "L", "ACME"
    ds.ImagerPixelSpacing = [0.2, 0.25]  # used when PixelSpacing is absent
    ds.InstanceNumber = "7"
    header = read_header(save(ds, tmp_path / "hdr.dcm"))
    assert header == DicomHeader(
        patient_id="P0001",
        study_uid=generate_uid(entropy_srcs=["study"]),
        series_uid=generate_uid(entropy_srcs=["series"]),
        sop_uid=generate_uid(entropy_srcs=["hdr"]),
        sop_class_uid=DigitalXRayImageStorageForPresentation,
        modality="DX", view_position="PA", laterality="L", manufacturer="ACME",
        transfer_syntax=ExplicitVRLittleEndian, photometric="MONOCHROME2", bits_stored=12,
        rows=6, columns=5, n_frames=1, pixel_spacing=(0.2, 0.25), image_position=None,
        image_orientation=None, instance_number=7,
    )  # fmt: skip
    assert "Doe" not in repr(header) and "1970" not in repr(header)


def test_file_without_preamble_or_file_meta_is_read(tmp_path: Path) -> None:
    stored = np.array([[0, 1], [2, 4]], dtype=np.uint16)
    ds = make_dataset(stored)
    del ds.file_meta
    path = tmp_path / "raw.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)  # no preamble, no file meta
    assert path.read_bytes()[:2] == b"\x08\x00"
    image = read_dicom(path)
    assert image.header.transfer_syntax == ""  # not in the file; decoded as parsed
    assert read_header(path) == image.header
    np.testing.assert_allclose(image.frames[0], stored / 4.0, atol=1e-7)


def test_compressed_file_without_transfer_syntax_cannot_be_decoded(tmp_path: Path) -> None:
    ds = make_dataset(np.arange(1024, dtype=np.uint16).reshape(32, 32), modality="CT")
    ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    del ds.file_meta  # the codec is now unknowable
    path = tmp_path / "nots.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)
    assert reason_of(path) == "cannot decode transfer syntax (missing) of encapsulated pixel data"


# --------------------------------------------------------------------------- reasons


def test_text_and_empty_files_are_not_dicom(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("PatientID: 1234\nThis is not an image.\n")
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    png = tmp_path / "image.dcm"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    for path in (text, empty, png):
        assert reason_of(path) == "not a DICOM file"
        with pytest.raises(DicomReadError, match="^not a DICOM file$"):
            read_header(path)


def test_missing_path_and_directory_cannot_be_read(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "absent.dcm").startswith("cannot read file: ")
    assert reason_of(tmp_path).startswith("cannot read file: ")


@pytest.mark.parametrize("where", ["pixel data", "pixel data header", "header value"])
def test_truncated_file(tmp_path: Path, where: str) -> None:
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    data = save(make_dataset(stored), tmp_path / "whole.dcm").read_bytes()
    pixel_start = len(data) - stored.nbytes - 12  # explicit VR OW header is 12 bytes
    cut = {
        "pixel data": pixel_start + 12 + stored.nbytes // 2,
        "pixel data header": pixel_start + 4,
        "header value": data.index(b"P0001") + 2,  # inside the PatientID value
    }[where]
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:cut])
    assert reason_of(path).startswith("truncated or corrupt file: ")


@pytest.mark.parametrize(
    "syntax, plugin", [(RLELossless, "pydicom"), (JPEG2000Lossless, "pylibjpeg")]
)
def test_truncated_compressed_file(tmp_path: Path, syntax: str, plugin: str) -> None:
    # pydicom drops a whole data set whose encapsulated pixel data runs past the end of
    # the file, leaving only the file meta: that is a cut file, not a non-DICOM one.
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 4000, size=(64, 64), dtype=np.uint16)
    ds = make_dataset(stored, bits_stored=12)
    ds.compress(syntax, encoding_plugin=plugin, generate_instance_uid=False)
    data = save(ds, tmp_path / "whole.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    assert reason_of(path).startswith("truncated or corrupt file: ")


def test_no_pixel_data_names_the_sop_class(tmp_path: Path) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["sr"])
    ds.Modality = "SR"
    ds.PatientID = "P0001"
    path = save(ds, tmp_path / "report.dcm")
    assert reason_of(path) == "no pixel data (SOP class Basic Text SR Storage)"
    assert read_header(path).modality == "SR"  # headers of non-images are still readable


def test_non_image_sop_class_with_pixel_data(tmp_path: Path) -> None:
    grid = np.arange(16, dtype=np.uint16).reshape(4, 4)
    dose = make_dataset(grid, modality="RTDOSE", sop_class=RTDoseStorage)
    assert reason_of(save(dose, tmp_path / "dose.dcm")) == "non-image SOP class (RT Dose Storage)"


def test_rgb_is_rejected(tmp_path: Path) -> None:
    rgb = make_dataset(np.zeros((4, 4, 3), dtype=np.uint8), photometric="RGB", modality="OT")
    assert reason_of(save(rgb, tmp_path / "rgb.dcm")) == "colour image (RGB) is not supported"


def test_constant_images(tmp_path: Path) -> None:
    flat = make_dataset(np.full((4, 4), 7, dtype=np.uint16))
    assert reason_of(save(flat, tmp_path / "flat.dcm")) == "constant image (no contrast)"
    one_flat_frame = np.stack([np.eye(4, dtype=np.uint16), np.ones((4, 4), np.uint16)])
    multi = make_dataset(one_flat_frame)
    assert reason_of(save(multi, tmp_path / "multi.dcm")) == (
        "constant image (no contrast) in frame 1"
    )
    clipped = make_dataset(np.eye(4, dtype=np.uint16), WindowCenter=1000, WindowWidth=10)
    assert reason_of(save(clipped, tmp_path / "clipped.dcm")) == (
        "constant image (no contrast) after the VOI window"
    )


def test_missing_required_attributes(tmp_path: Path) -> None:
    ds = make_dataset(np.eye(4, dtype=np.uint16))
    del ds.PhotometricInterpretation
    del ds.BitsStored
    assert reason_of(save(ds, tmp_path / "bare.dcm")) == (
        "missing required attributes: PhotometricInterpretation, BitsStored"
    )


def test_undecodable_compressed_pixel_data_names_the_syntax(tmp_path: Path) -> None:
    ds = make_dataset(np.eye(4, dtype=np.uint8))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8 not a jpeg stream \xff\xd9"])
    ds["PixelData"].VR = "OB"
    reason = reason_of(save(ds, tmp_path / "bad.jpg.dcm"))
    assert reason.startswith("cannot decode transfer syntax JPEG Baseline (Process 1): ")
    assert len(reason) <= MAX_REASON_LENGTH


def test_native_decoder_panic_becomes_a_reason(tmp_path: Path) -> None:
    # An RLE segment that decodes past the end of its frame: pylibjpeg-rle (Rust) panics
    # with pyo3's PanicException, a BaseException that ``except Exception`` would miss.
    fill = b"\x81\x00\x81\x00"  # two replicate runs of 128 bytes: one 16x16 byte plane
    segments = [fill + b"\xff\x05", fill]  # the first overruns by 2 bytes
    offsets = [64, 64 + len(segments[0])] + [0] * 13
    frame = np.array([2, *offsets], dtype="<u4").tobytes() + b"".join(segments)
    ds = make_dataset(np.eye(16, dtype=np.int16), modality="CT", sop_class=CTImageStorage)
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    reason = reason_of(save(ds, tmp_path / "panic.dcm"))
    assert reason.startswith("cannot decode transfer syntax RLE Lossless: ")


def test_damaged_files_only_ever_raise_dicom_read_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    stored = rng.integers(0, 4096, size=(16, 16), dtype=np.uint16)
    ds = make_dataset(stored, WindowCenter=2000, WindowWidth=1000)
    data = np.frombuffer(save(ds, tmp_path / "good.dcm").read_bytes(), dtype=np.uint8)
    outcomes = {"image": 0, "error": 0}
    for trial in range(40):
        damaged = data.copy()
        positions = rng.integers(132, len(data), size=4)  # keep preamble and "DICM"
        damaged[positions] = rng.integers(0, 256, size=4, dtype=np.uint8)
        path = tmp_path / f"damaged{trial}.dcm"
        path.write_bytes(damaged.tobytes()[: rng.integers(140, len(data) + 1)])
        try:
            image = read_dicom(path)
        except DicomReadError as error:
            assert error.reason and not error.reason.startswith("unexpected error"), error.reason
            outcomes["error"] += 1
        else:
            assert image.frames.dtype == np.float32 and np.isfinite(image.frames).all()
            outcomes["image"] += 1
    assert outcomes["error"] > 0


def test_reason_is_short_single_line_and_pickles() -> None:
    error = DicomReadError("truncated or corrupt file: " + "x\n" * 200)
    assert len(error.reason) == MAX_REASON_LENGTH and "\n" not in error.reason
    assert str(error) == error.reason
    assert pickle.loads(pickle.dumps(error)).reason == error.reason
