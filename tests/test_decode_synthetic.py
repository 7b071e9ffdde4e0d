"""readrace.ingest.dicom against the pixel values the synthetic generator intended.

The generator keeps, for every image, the float intensity it meant (truth/{SOP}.npy) before
quantising, inverting (MONOCHROME1) and rescaling it into the file. A correct decoder gives
back that intensity up to an increasing affine map and the quantisation step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from readrace.ingest.dicom import read_dicom
from readrace.synthetic import CohortSpec, generate_cohort


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    made = {}
    for modality, site in (("cxr", "A"), ("cxr", "B"), ("ct", "A")):
        root = tmp_path_factory.mktemp(f"{modality}{site}")
        spec = CohortSpec(modality, site=site, n_patients=5, seed=9, write_truth=True, broken_files=False)
        truth = generate_cohort(spec, root, progress=False)
        made[(modality, site)] = (root, truth[truth["kind"] == "image"])
    return made


def _minmax(values: np.ndarray) -> np.ndarray:
    return (values - values.min()) / np.ptp(values)


def test_monochrome1_jpeg2000_site_decodes_to_the_intended_intensity(cohorts):
    root, images = cohorts[("cxr", "B")]
    assert set(images["photometric"]) == {"MONOCHROME1"}
    assert set(images["transfer_syntax"]) == {"1.2.840.10008.1.2.4.90"}  # JPEG 2000 Lossless
    for row in images.itertuples():
        decoded = read_dicom(root / row.path)
        intended = np.load(root / "truth" / f"{row.SOPInstanceUID}.npy")
        assert decoded.frames.shape == (1, *intended.shape) and not decoded.is_ct
        # No VOI at this site: min-max normalised, inverted so that dense is white.
        step = 1.0 / (960 * np.ptp(intended))  # 10-bit site: 960 stored levels over the range
        assert np.max(np.abs(decoded.frames[0] - _minmax(intended))) <= 2 * step


def test_windowed_site_decodes_to_an_increasing_affine_map_of_the_intensity(cohorts):
    root, images = cohorts[("cxr", "A")]
    for row in images.itertuples():
        decoded = read_dicom(root / row.path).frames[0].ravel()
        intended = np.load(root / "truth" / f"{row.SOPInstanceUID}.npy").ravel()
        slope, intercept = np.polyfit(intended, decoded, 1)
        assert slope > 0
        assert np.max(np.abs(decoded - (slope * intended + intercept))) < 2e-3
        assert 0.0 <= decoded.min() and decoded.max() <= 1.0


def test_rle_ct_decodes_to_hounsfield_units(cohorts):
    root, images = cohorts[("ct", "A")]
    assert set(images["transfer_syntax"]) == {"1.2.840.10008.1.2.5"}  # RLE Lossless
    for row in images.head(20).itertuples():
        decoded = read_dicom(root / row.path)
        intended = np.load(root / "truth" / f"{row.SOPInstanceUID}.npy")
        assert decoded.is_ct
        assert np.max(np.abs(decoded.frames[0] - intended)) <= 0.5 + 1e-4


def test_grayscale_jpeg_and_png_read_as_display_values(tmp_path):
    from PIL import Image

    from readrace.ingest.dicom import DicomReadError
    from readrace.ingest.shard import read_image

    ramp = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    np.testing.assert_allclose(read_image(tmp_path / "ramp.png").frames[0], ramp / 255.0)
    deep = (np.tile(np.arange(256, dtype=np.uint16), (16, 1)) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_allclose(read_image(tmp_path / "deep.png").frames[0], deep / 65535.0, atol=1e-6)
    Image.fromarray(ramp).save(tmp_path / "ramp.jpg", quality=100)
    assert np.abs(read_image(tmp_path / "ramp.jpg").frames[0] - ramp / 255.0).max() < 0.02
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "colour.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    for name, reason in (("colour.png", "colour image"), ("broken.jpg", "unreadable image file")):
        with pytest.raises(DicomReadError) as info:
            read_image(tmp_path / name)
        assert info.value.reason.startswith(reason)
