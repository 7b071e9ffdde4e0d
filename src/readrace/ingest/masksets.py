"""Ground-truth lung masks in the layouts their providers ship, read for a dataset's files.

A dataset names its masks with the option ``lung_masks`` (generic, mimic_cxr and chexpert
adapters): ``{layout, path, min_dice}``, ``path`` relative to the dataset root unless
absolute. :func:`mask_reader` turns it into ``reader(image_path) -> mask or None``, the
native-grid lung mask (left and right lungs united, uint8 0/1) of an image file given
relative to the root, which :meth:`readrace.ingest.adapters.DatasetAdapter.lung_mask` returns.

Layouts:

``montgomery``
    Montgomery County set: ``{path}/leftMask/{image name}`` and ``{path}/rightMask/{image
    name}`` (PNG, nonzero = lung; ``path`` defaults to ``ManualMask``).
``shenzhen``
    Shenzhen set: ``{path}/{image stem}_mask.png`` (``path`` defaults to ``mask``); 566 of
    its 662 images have one, the others have none.
``scr``
    SCR masks of the JSRT images: ``{path}/left lung/{image stem}.gif`` and ``{path}/right
    lung/{image stem}.gif`` (1024 px for the 2048-px images: the same field, so on the cache
    grid the same mask but for edge pixels; ``path`` defaults to ``scr/masks``). JSRT's raw
    ``.IMG`` files are read by readrace.ingest.raster.read_jsrt.
``chexmask``
    CheXmask: one CSV(.gz) per source dataset with run-length-encoded ``Left Lung`` and
    ``Right Lung``, ``Height``, ``Width`` and the quality estimate ``Dice RCA (Mean)``; a
    mask below ``min_dice`` (default 0.7, CheXmask's own recommendation) counts as absent.
    Rows are keyed by ``dicom_id`` (MIMIC-CXR: the file's stem), ``Path`` (CheXpert: the
    last four parts, split/patient/study/view) or ``Image Index`` / ``ImageID`` (the file's
    name). The RLE is CheXmask's: pairs of (1-based start, length) over the row-major image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

LAYOUTS: tuple[str, ...] = ("montgomery", "shenzhen", "scr", "chexmask")
DEFAULT_PATHS = {"montgomery": "ManualMask", "shenzhen": "mask", "scr": "scr/masks"}
#: CheXmask's recommended threshold on ``Dice RCA (Mean)``.
CHEXMASK_MIN_DICE = 0.7
CHEXMASK_QUALITY = "Dice RCA (Mean)"
_CHEXMASK_KEYS = ("dicom_id", "Path", "Image Index", "ImageID")
_CHEXMASK_COLUMNS = ("Left Lung", "Right Lung", "Height", "Width", CHEXMASK_QUALITY)

MaskReader = Callable[[str], "np.ndarray | None"]


class MaskSetError(ValueError):
    """A mask set's files or table are not in the layout its option names."""


def read_mask_image(path: Path) -> np.ndarray:
    """A PNG or GIF mask as uint8 0/1 (any grey level above black is lung; a palette is
    looked up first, since its indices are not grey levels)."""
    with Image.open(path) as image:
        array = np.asarray(image.convert("L"))
    return (array != 0).astype(np.uint8)


def _union(parts: list[Path]) -> np.ndarray | None:
    present = [part for part in parts if part.is_file()]
    if not present:
        return None
    if len(present) != len(parts):
        raise MaskSetError(f"only one lung's mask of {parts[0].name} is present ({present[0]})")
    masks = [read_mask_image(part) for part in present]
    if len({mask.shape for mask in masks}) != 1:
        raise MaskSetError(f"the lung masks of {parts[0].name} differ in size: {[m.shape for m in masks]}")
    return np.maximum(*masks) if len(masks) > 1 else masks[0]


def decode_chexmask_rle(rle: str, height: int, width: int) -> np.ndarray:
    """CheXmask's run-length encoding (1-based start, length pairs over the row-major image)
    as a uint8 0/1 ``(height, width)`` mask."""
    runs = np.asarray(str(rle).split(), dtype=np.int64)
    if len(runs) % 2:
        raise MaskSetError("a CheXmask RLE holds an odd number of values")
    flat = np.zeros(height * width, np.uint8)
    for start, length in zip(runs[0::2] - 1, runs[1::2]):
        if start < 0 or start + length > flat.size:
            raise MaskSetError(f"a CheXmask run ({start + 1}, {length}) falls outside a {height} x {width} image")
        flat[start:start + length] = 1
    return flat.reshape(height, width)


def chexmask_key(column: str, image_path: str) -> str:
    """What a CheXmask table's key column holds for an image file (module doc)."""
    path = PurePosixPath(image_path)
    if column == "dicom_id":
        return path.stem
    if column == "Path":
        return "/".join(path.parts[-4:])
    return path.name


class CheXmaskTable:
    """The lung masks of one CheXmask CSV at or above ``min_dice``, read once (in chunks, only
    the columns needed) on first use."""

    def __init__(self, path: Path, min_dice: float = CHEXMASK_MIN_DICE) -> None:
        if not path.is_file():
            raise MaskSetError(f"missing CheXmask table {path}")
        self.path, self.min_dice = path, min_dice
        self._rows: dict[str, tuple[str, str, int, int]] | None = None
        self.column = ""

    def _load(self) -> dict[str, tuple[str, str, int, int]]:
        header = list(pd.read_csv(self.path, nrows=0).columns)
        keys = [column for column in _CHEXMASK_KEYS if column in header]
        missing = [column for column in _CHEXMASK_COLUMNS if column not in header]
        if not keys or missing:
            raise MaskSetError(f"CheXmask table {self.path} lacks {', '.join(missing) or 'a key column'} "
                               f"(key one of {', '.join(_CHEXMASK_KEYS)})")
        self.column = keys[0]
        rows: dict[str, tuple[str, str, int, int]] = {}
        for chunk in pd.read_csv(self.path, usecols=[self.column, *_CHEXMASK_COLUMNS], chunksize=20_000,
                                 dtype={self.column: str}):
            good = chunk[pd.to_numeric(chunk[CHEXMASK_QUALITY], errors="coerce") >= self.min_dice]
            good = good.dropna(subset=["Left Lung", "Right Lung", "Height", "Width"])
            for key, left, right, height, width in zip(good[self.column], good["Left Lung"], good["Right Lung"],
                                                       good["Height"], good["Width"]):
                rows[chexmask_key(self.column, key) if self.column == "Path" else key] = (
                    left, right, int(height), int(width))
        return rows

    def __call__(self, image_path: str) -> np.ndarray | None:
        if self._rows is None:
            self._rows = self._load()
        row = self._rows.get(chexmask_key(self.column, image_path))
        if row is None:
            return None
        left, right, height, width = row
        return np.maximum(decode_chexmask_rle(left, height, width), decode_chexmask_rle(right, height, width))


def mask_reader(root: Path, option: dict[str, Any]) -> MaskReader:
    """The reader of a dataset's ``lung_masks`` option (module doc)."""
    layout = option.get("layout")
    if layout not in LAYOUTS:
        raise MaskSetError(f"lung_masks.layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout == "chexmask" and not option.get("path"):
        raise MaskSetError("lung_masks.path (the CheXmask CSV) is required for the chexmask layout")
    path = Path(option.get("path") or DEFAULT_PATHS[layout])
    path = path if path.is_absolute() else root / path
    if layout == "chexmask":
        return CheXmaskTable(path, float(option.get("min_dice", CHEXMASK_MIN_DICE)))
    if not path.is_dir():
        raise MaskSetError(f"lung_masks.path: {path} is not a folder ({layout} layout)")
    if layout == "montgomery":
        return lambda image: _union([path / "leftMask" / PurePosixPath(image).name,
                                     path / "rightMask" / PurePosixPath(image).name])
    if layout == "shenzhen":
        return lambda image: _union([path / f"{PurePosixPath(image).stem}_mask.png"])
    return lambda image: _union([path / "left lung" / f"{PurePosixPath(image).stem}.gif",
                                 path / "right lung" / f"{PurePosixPath(image).stem}.gif"])
