"""Known-answer tests of readrace.ingest.dicom on small DICOM files written with pydicom.

Every reason is public (it reaches results/): the tests check that paths and unknown header
values stay out of it and go to the error's private detail."""

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
from pydicom.pixels import convert_color_space
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
    SecondaryCaptureImageStorage,
    generate_uid,
)

from conftest import make_dataset, save
from readrace.ingest.dicom import (
    MAX_REASON_LENGTH,
    DicomHeader,
    DicomReadError,
    order_ct_slices,
    read_dicom,
    read_header,
)

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def error_of(path: Path) -> DicomReadError:
    with pytest.raises(DicomReadError) as info:
        read_dicom(path)
    return info.value


def reason_of(path: Path) -> str:
    """The public reason, checked to name neither the file nor its folder."""
    reason = error_of(path).reason
    assert path.name not in reason and str(path.parent) not in reason, reason
    return reason


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
    folder = tmp_path / "MRN84412907"  # exports are named by MRN: the OS message quotes it
    folder.mkdir()
    absent = error_of(folder / "ACC2023.dcm")
    assert absent.reason == "cannot read file: No such file or directory"
    assert "MRN84412907/ACC2023.dcm" in absent.detail  # privately, the library's message
    directory = error_of(folder)
    assert directory.reason == "cannot read file: Is a directory"
    assert "MRN84412907" in directory.detail and "MRN84412907" not in directory.reason


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
    reason = reason_of(path)
    assert reason.startswith("truncated or corrupt file: ")
    if where == "pixel data":  # the sizes are integers the header and file give: public
        assert reason == f"truncated or corrupt file: pixel data is {stored.nbytes // 2} bytes, {stored.nbytes} expected"


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


def grey_as_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def colour_dataset(pixels: np.ndarray, photometric: str = "RGB", bits_stored: int = 8, **kwargs: object) -> Dataset:
    kwargs.setdefault("modality", "OT")
    return make_dataset(pixels, photometric=photometric, bits_stored=bits_stored,
                        sop_class=SecondaryCaptureImageStorage, **kwargs)  # fmt: skip


GREY = (np.arange(16, dtype=np.uint8).reshape(4, 4) * 17)  # 0 .. 255


def test_grey_stored_as_rgb_is_read_as_grey(tmp_path: Path) -> None:
    image = read_dicom(save(colour_dataset(grey_as_rgb(GREY)), tmp_path / "rgb.dcm"))
    assert image.frames.shape == (1, 4, 4) and image.frames.dtype == np.float32 and not image.is_ct
    np.testing.assert_array_equal(image.frames[0], (GREY / 255.0).astype(np.float32))
    assert image.header.photometric == "RGB"


def test_grey_rgb_planar_and_12_bit(tmp_path: Path) -> None:
    # Colour-by-plane storage (PlanarConfiguration 1), as some film digitisers write it.
    planar = colour_dataset(grey_as_rgb(GREY))
    planar.PlanarConfiguration = 1
    planar.PixelData = np.moveaxis(grey_as_rgb(GREY), -1, 0).tobytes()
    frames = read_dicom(save(planar, tmp_path / "planar.dcm")).frames
    np.testing.assert_array_equal(frames[0], (GREY / 255.0).astype(np.float32))
    # No modality or VOI LUT for colour: the stored value over the BitsStored range.
    deep = GREY.astype(np.uint16) * 16  # 0 .. 4080 of 4095
    ds = colour_dataset(grey_as_rgb(deep), bits_stored=12, WindowCenter=100, WindowWidth=10)
    ds.RescaleSlope, ds.RescaleIntercept = 3, -50
    frames = read_dicom(save(ds, tmp_path / "deep.dcm")).frames
    np.testing.assert_array_equal(frames[0], (deep / 4095.0).astype(np.float32))


def test_one_differing_pixel_makes_a_colour_image(tmp_path: Path) -> None:
    pixels = grey_as_rgb(GREY)
    pixels[2, 3, 1] += 1  # one green value
    assert reason_of(save(colour_dataset(pixels), tmp_path / "rgb.dcm")) == "colour image (RGB) is not supported"
    pixels = grey_as_rgb(GREY)
    pixels[0, 0, 2] += 1  # one blue value
    assert reason_of(save(colour_dataset(pixels), tmp_path / "rgb2.dcm")) == "colour image (RGB) is not supported"


def test_grey_stored_as_ybr_full_is_read_as_grey(tmp_path: Path) -> None:
    ybr = convert_color_space(grey_as_rgb(GREY), "RGB", "YBR_FULL")
    assert (ybr[..., 1:] == 128).all() and not np.array_equal(ybr[..., 0], ybr[..., 1])  # stored as YBR
    image = read_dicom(save(colour_dataset(ybr, photometric="YBR_FULL"), tmp_path / "ybr.dcm"))
    np.testing.assert_array_equal(image.frames[0], (GREY / 255.0).astype(np.float32))
    colour = ybr.copy()
    colour[1, 1, 2] = 140  # a red tint
    reason = reason_of(save(colour_dataset(colour, photometric="YBR_FULL"), tmp_path / "tint.dcm"))
    assert reason == "colour image (YBR_FULL) is not supported"


def test_constant_and_ct_colour_images(tmp_path: Path) -> None:
    flat = colour_dataset(np.full((4, 4, 3), 90, np.uint8))
    assert reason_of(save(flat, tmp_path / "flat.dcm")) == "constant image (no contrast)"
    frames = np.stack([grey_as_rgb(GREY), np.full((4, 4, 3), 7, np.uint8)])
    multi = colour_dataset(frames)
    assert reason_of(save(multi, tmp_path / "multi.dcm")) == "constant image (no contrast) in frame 1"
    ct = colour_dataset(grey_as_rgb(GREY), modality="CT")
    assert reason_of(save(ct, tmp_path / "ct.dcm")) == "colour image (RGB) is not supported for CT: no Hounsfield units"
    palette = colour_dataset(GREY, photometric="PALETTE COLOR")
    assert reason_of(save(palette, tmp_path / "palette.dcm")) == "colour image (PALETTE COLOR) is not supported"


def test_grey_jpeg_and_png_stored_as_colour_follow_the_dicom_rule(tmp_path: Path) -> None:
    from PIL import Image

    from readrace.ingest.raster import read_raster

    Image.fromarray(grey_as_rgb(GREY), mode="RGB").save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_raster(tmp_path / "rgb.png").frames[0], GREY / np.float32(255))
    rgba = np.concatenate([grey_as_rgb(GREY), np.full((4, 4, 1), 9, np.uint8)], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_raster(tmp_path / "rgba.png").frames[0], GREY / np.float32(255))
    # A palette image: pixel k holds index 15 - k, whose palette entry is the grey 17 k.
    palette = Image.fromarray((15 - GREY // 17).astype(np.uint8), mode="P")
    palette.putpalette([level for j in range(16) for level in [17 * (15 - j)] * 3])
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_raster(tmp_path / "palette.png").frames[0], GREY / np.float32(255))
    tinted = grey_as_rgb(GREY)
    tinted[2, 3, 1] += 1
    Image.fromarray(tinted, mode="RGB").save(tmp_path / "tinted.png")
    with pytest.raises(DicomReadError, match=r"^colour image \(RGB\) is not supported$"):
        read_raster(tmp_path / "tinted.png")


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
    error = error_of(save(ds, tmp_path / "bad.jpg.dcm"))
    assert error.reason == "cannot decode transfer syntax JPEG Baseline (Process 1)"
    assert "libjpeg" in error.detail  # the decoder's own message, privately


def test_unregistered_uids_and_unknown_terms_stay_private(tmp_path: Path) -> None:
    # Header values are free to hold anything, an MRN included: only registered names and
    # defined terms are quoted in a reason.
    marker = "84412907"
    odd = make_dataset(np.eye(4, dtype=np.uint16))
    odd.PhotometricInterpretation = f"MRN{marker}"
    error = error_of(save(odd, tmp_path / "odd.dcm"))
    assert error.reason == "unsupported photometric interpretation (not a defined term)"
    assert marker in error.detail
    odd.PhotometricInterpretation = f"YBR_{marker}"
    error = error_of(save(odd, tmp_path / "ybr.dcm"))
    assert error.reason == "colour image (unrecognised) is not supported" and marker in error.detail
    report = Dataset()
    report.file_meta = FileMetaDataset()
    report.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    report.SOPClassUID = f"1.2.826.0.1.{marker}"
    report.SOPInstanceUID = generate_uid(entropy_srcs=["private"])
    error = error_of(save(report, tmp_path / "report.dcm"))
    assert error.reason == "no pixel data (SOP class unregistered)" and marker in error.detail
    private = make_dataset(np.eye(4, dtype=np.uint8))
    private.file_meta.TransferSyntaxUID = f"1.2.826.0.1.{marker}.1"
    private.PixelData = encapsulate([b"\x00" * 16])
    private["PixelData"].VR = "OB"
    private.save_as(tmp_path / "syntax.dcm", enforce_file_format=True, implicit_vr=False, little_endian=True)
    error = error_of(tmp_path / "syntax.dcm")
    assert error.reason == "cannot decode transfer syntax (unregistered)" and marker in error.detail


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
    error = error_of(save(ds, tmp_path / "panic.dcm"))
    assert error.reason == "cannot decode transfer syntax RLE Lossless"
    assert error.detail.startswith("PanicException")


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
            assert "damaged" not in error.reason and str(tmp_path) not in error.reason, error.reason
            outcomes["error"] += 1
        else:
            assert image.frames.dtype == np.float32 and np.isfinite(image.frames).all()
            outcomes["image"] += 1
    assert outcomes["error"] > 0


def test_reason_is_short_single_line_and_pickles() -> None:
    error = DicomReadError("truncated or corrupt file: " + "x\n" * 200, "/data/MRN84412907/a.dcm\nline two")
    assert len(error.reason) == MAX_REASON_LENGTH and "\n" not in error.reason
    assert str(error) == error.reason and "MRN" not in str(error)  # str() never shows the detail
    assert error.detail == "/data/MRN84412907/a.dcm line two"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail) == (error.reason, error.detail)
