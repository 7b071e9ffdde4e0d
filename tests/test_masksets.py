"""Public lung-mask sets read in their providers' layouts, from tiny fake trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import CONFIG_SCHEMA
from readrace.config import ConfigError, validate_config
from readrace.ingest.adapters import DatasetAdapter, DatasetError, make_adapter
from readrace.ingest.adapters.mask_sets import parse_reading
from readrace.ingest.masksets import MaskSetError, decode_chexmask_rle
from readrace.ingest.raster import JSRT_SHAPE, read_raster
from readrace.segmentation.masks import to_grid


class MaskedSet(DatasetAdapter):
    """The least adapter: only the base class's lung_mask is under test."""

    name = "masked"

    def list_files(self) -> list[str]:
        return []

    def study_table(self) -> pd.DataFrame:
        return pd.DataFrame()


def lungs(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    left, right = np.zeros((height, width), np.uint8), np.zeros((height, width), np.uint8)
    left[2:-2, 1:width // 2 - 1] = 1
    right[2:-2, width // 2 + 1:-1] = 1
    return left, right


def save(mask: np.ndarray, path: Path, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(mask * 255)
    image.convert("P").save(path) if mode == "P" else image.save(path)


def encode_rle(mask: np.ndarray) -> str:
    """CheXmask's encoding: (1-based start, length) runs over the row-major image."""
    flat = np.concatenate([[0], mask.ravel(), [0]])
    runs = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(map(str, runs))


def test_montgomery_layout(tmp_path):
    left, right = lungs(20, 16)
    save(left, tmp_path / "ManualMask/leftMask/MCUCXR_0001_0.png")
    save(right, tmp_path / "ManualMask/rightMask/MCUCXR_0001_0.png")
    adapter = MaskedSet(tmp_path, {"lung_masks": {"layout": "montgomery"}})
    assert np.array_equal(adapter.lung_mask("CXR_png/MCUCXR_0001_0.png"), left | right)
    assert adapter.lung_mask("CXR_png/MCUCXR_0002_1.png") is None
    save(left, tmp_path / "ManualMask/leftMask/MCUCXR_0003_0.png")
    with pytest.raises(MaskSetError, match="only one lung"):
        adapter.lung_mask("CXR_png/MCUCXR_0003_0.png")


def test_shenzhen_layout(tmp_path):
    left, right = lungs(12, 12)
    save(left | right, tmp_path / "mask/CHNCXR_0001_0_mask.png")
    adapter = MaskedSet(tmp_path, {"lung_masks": {"layout": "shenzhen"}})
    assert np.array_equal(adapter.lung_mask("CXR_png/CHNCXR_0001_0.png"), left | right)
    assert adapter.lung_mask("CXR_png/CHNCXR_0002_1.png") is None  # 96 images have no mask


def test_jsrt_images_with_scr_masks(tmp_path):
    raw = np.full(JSRT_SHAPE, 4095, ">u2")  # film density: dark
    raw[512:1536, 512:1536] = 0  # a bright square
    raw.tofile(tmp_path / "JPCLN001.IMG")
    image = read_raster(tmp_path / "JPCLN001.IMG")
    assert image.pixels.shape == (1, *JSRT_SHAPE) and image.pixels[0, 1000, 1000] == 1.0 and image.pixels[0, 0, 0] == 0.0
    left, right = lungs(32, 32)  # SCR masks: half the image's resolution, as GIFs
    save(left, tmp_path / "scr/masks/left lung/JPCLN001.gif", mode="P")
    save(right, tmp_path / "scr/masks/right lung/JPCLN001.gif", mode="P")
    mask = MaskedSet(tmp_path, {"lung_masks": {"layout": "scr"}}).lung_mask("JPCLN001.IMG")
    assert np.array_equal(mask, left | right)
    # On the cache grid, the 32-px mask and the same mask at the image's 64 px agree but for
    # a few edge pixels (the half-way value falls differently between two filters' taps).
    coarse, fine = to_grid(mask, 16), to_grid(np.kron(mask, np.ones((2, 2), np.uint8)), 16)
    assert (coarse == fine).mean() > 0.9 and coarse[4:12, 2:6].all() and fine[4:12, 2:6].all()


def test_chexmask_rle_and_quality_threshold(tmp_path):
    left, right = lungs(10, 14)
    assert np.array_equal(decode_chexmask_rle(encode_rle(left), 10, 14), left)
    assert decode_chexmask_rle(encode_rle(left), 10, 14)[2, 1] == 1  # row-major, 1-based
    rows = [("a1b2", 0.91), ("c3d4", 0.65)]
    pd.DataFrame({
        "dicom_id": [key for key, _ in rows], "Dice RCA (Mean)": [dice for _, dice in rows],
        "Left Lung": encode_rle(left), "Right Lung": encode_rle(right), "Heart": "", "Height": 10, "Width": 14,
    }).to_csv(tmp_path / "MIMIC-CXR-JPG.csv.gz", index=False)
    adapter = MaskedSet(tmp_path, {"lung_masks": {"layout": "chexmask", "path": "MIMIC-CXR-JPG.csv.gz"}})
    assert np.array_equal(adapter.lung_mask("files/p10/p10000032/s5041/a1b2.jpg"), left | right)
    assert adapter.lung_mask("files/p10/p10000032/s5041/c3d4.jpg") is None  # below Dice RCA 0.7
    stricter = MaskedSet(tmp_path, {"lung_masks": {"layout": "chexmask", "path": "MIMIC-CXR-JPG.csv.gz",
                                                   "min_dice": 0.95}})
    assert stricter.lung_mask("files/p10/p10000032/s5041/a1b2.jpg") is None


def test_chexmask_of_chexpert_is_keyed_by_path(tmp_path):
    left, right = lungs(8, 8)
    pd.DataFrame({"Path": ["CheXpert-v1.0/train/patient00001/study1/view1_frontal.jpg"], "Dice RCA (Mean)": [0.8],
                  "Left Lung": [encode_rle(left)], "Right Lung": [encode_rle(right)], "Height": [8], "Width": [8]}
                 ).to_csv(tmp_path / "CheXpert.csv", index=False)
    adapter = MaskedSet(tmp_path, {"lung_masks": {"layout": "chexmask", "path": "CheXpert.csv"}})
    assert adapter.lung_mask("train/patient00001/study1/view1_frontal.jpg").sum() == (left | right).sum()
    assert adapter.lung_mask("train/patient00001/study1/view2_lateral.jpg") is None


def test_a_wrong_layout_or_a_missing_folder_says_so(tmp_path):
    with pytest.raises(MaskSetError, match="not one of"):
        MaskedSet(tmp_path, {"lung_masks": {"layout": "jsrt"}}).lung_mask("x.png")
    with pytest.raises(MaskSetError, match="is not a folder"):
        MaskedSet(tmp_path, {"lung_masks": {"layout": "shenzhen"}}).lung_mask("x.png")
    pd.DataFrame({"dicom_id": ["a"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(MaskSetError, match="lacks Left Lung"):
        MaskedSet(tmp_path, {"lung_masks": {"layout": "chexmask", "path": "bad.csv"}}).lung_mask("a.jpg")


# ------------------------------------------------------------------ the mask sets' adapters


@pytest.mark.parametrize("text, expected", [
    ("Patient's Sex: M\nPatient's Age: 058Y\nnormal\n", ("M", "58")),   # Montgomery
    ("Patient's Sex: F\nPatient's Age: 040Y\n", ("F", "40")),
    ("male 35yrs\nnormal\n", ("M", "35")),                               # Shenzhen
    ("Female, 45yr\nright PTB\n", ("F", "45")),
    ("female  9 month\n", ("F", None)),
    ("normal\n", (None, None)),
])
def test_clinical_readings_give_sex_and_age(text, expected):
    assert parse_reading(text) == expected


def test_shenzhen_set_one_patient_per_image_without_race(tmp_path):
    left, right = lungs(20, 16)
    for name in ("CHNCXR_0001_0", "CHNCXR_0002_1"):
        save(np.full((20, 16), 1, np.uint8), tmp_path / f"CXR_png/{name}.png")
    save(left | right, tmp_path / "mask/CHNCXR_0001_0_mask.png")  # the second has no mask
    (tmp_path / "CXR_png/Thumbs.db").write_bytes(b"x")
    (tmp_path / "ClinicalReadings").mkdir()
    (tmp_path / "ClinicalReadings/CHNCXR_0001_0.txt").write_text("male 35yrs\nnormal\n")
    adapter = make_adapter("shenzhen", tmp_path, {})
    assert adapter.files() == ["CXR_png/CHNCXR_0001_0.png", "CXR_png/CHNCXR_0002_1.png", "CXR_png/Thumbs.db"]
    studies = adapter.study_table().set_index("patient_key")
    assert studies["race"].isna().all() and (studies.index == studies["study_key"]).all()
    assert studies.loc["CHNCXR_0001_0", ["sex", "age"]].tolist() == ["M", "35"]
    assert studies.loc["CHNCXR_0002_1", ["sex", "age"]].isna().all()
    assert np.array_equal(adapter.lung_mask("CXR_png/CHNCXR_0001_0.png"), left | right)
    assert adapter.lung_mask("CXR_png/CHNCXR_0002_1.png") is None
    assert adapter.file_table().loc["CXR_png/CHNCXR_0002_1.png", "patient_key"] == "CHNCXR_0002_1"


def test_jsrt_set_lists_its_raw_images_and_reads_the_scr_masks(tmp_path):
    (tmp_path / "JPCLN001.IMG").write_bytes(b"")
    (tmp_path / "JPCNN002.IMG").write_bytes(b"")
    left, right = lungs(32, 32)
    save(left, tmp_path / "scr/masks/left lung/JPCLN001.gif", mode="P")
    save(right, tmp_path / "scr/masks/right lung/JPCLN001.gif", mode="P")
    adapter = make_adapter("jsrt", tmp_path, {})
    assert adapter.files() == ["JPCLN001.IMG", "JPCNN002.IMG"]  # not the masks' folders
    assert np.array_equal(adapter.lung_mask("JPCLN001.IMG"), left | right)
    assert adapter.study_table()[["race", "sex", "age"]].isna().all().all()
    with pytest.raises(DatasetError, match="option images"):
        make_adapter("jsrt", tmp_path, {"images": "absent"})


def test_mask_set_settings_are_checked_with_the_key_named():
    def config(adapter: str, mask_set: bool, modality: str = "cxr", **options) -> dict:
        return {"datasets": {"m": {"adapter": adapter, "modality": modality, "mask_set": mask_set,
                                   "options": {"root": "/data/m", **options}}}}

    with pytest.raises(ConfigError, match=r"datasets\.m\.mask_set: the montgomery adapter reads a lung-mask set"):
        validate_config(config("montgomery", False), CONFIG_SCHEMA)
    with pytest.raises(ConfigError, match=r"datasets\.m\.mask_set: a mask set needs ground-truth lung masks"):
        validate_config(config("generic", True, manifest="m.csv"), CONFIG_SCHEMA)
    with pytest.raises(ConfigError, match=r"datasets\.m\.mask_set: a mask set trains the radiograph U-Net"):
        validate_config(config("generic", True, "ct", manifest="m.csv", lung_masks={"layout": "shenzhen"}),
                        CONFIG_SCHEMA)
    validate_config(config("shenzhen", True), CONFIG_SCHEMA)
