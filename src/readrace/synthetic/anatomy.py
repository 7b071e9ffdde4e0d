"""Vectorised phantoms: chest radiographs, chest CT volumes and mammograms.

Each phantom is drawn in millimetres on the pixel grid of its site (so two sites with
different pixel spacing see the same body at different scales) by alpha-compositing soft
shapes: ``image = image * (1 - m) + value * m`` for a soft mask ``m`` in [0, 1]. Radiograph
and mammogram intensities are in [0, 1] (higher = denser = brighter on a MONOCHROME2
display), CT intensities in HU. The phantoms carry no race information: their parameters
come from age, sex, BMI, findings and density only; the race signal is added afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np

# Radiograph intensities of the tissues (fractions of the display range).
_AIR = 0.05
_SOFT = 0.44
_LUNG = 0.16
_HEART = 0.47
_BONE_ADD = 0.16

# CT numbers (HU).
_HU_AIR = -1000.0
_HU_LUNG = -850.0
_HU_FAT = -100.0
_HU_SOFT = 40.0
_HU_BLOOD = 45.0
_HU_BONE = 700.0


def mm_grid(shape: tuple[int, int], spacing_mm: float, shift_mm: tuple[float, float] = (0.0, 0.0),
            magnification: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Body coordinates (x to the image right, y downward), in mm, of every pixel centre.

    ``shift_mm`` is the body point imaged at the grid centre; ``magnification`` > 1 makes
    the body look larger (each pixel covers less of it).
    """
    rows, cols = shape
    step = spacing_mm / magnification
    y = (np.arange(rows) - (rows - 1) / 2.0) * step + shift_mm[1]
    x = (np.arange(cols) - (cols - 1) / 2.0) * step + shift_mm[0]
    # float32 throughout the phantoms: half the memory traffic of float64, ample precision.
    X, Y = np.meshgrid(x.astype(np.float32), y.astype(np.float32))
    return X, Y  # shape (rows, cols)


def soft_step(d: np.ndarray, edge: float) -> np.ndarray:
    """Smooth 0 -> 1 transition as the signed distance ``d`` crosses 0 over about ``edge``."""
    return 0.5 * (1.0 + np.tanh(d / edge))


def soft_ellipse(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, ax: float, ay: float,
                 edge: float) -> np.ndarray:
    """Soft mask of an axis-aligned ellipse; ``edge`` is the edge width in mm."""
    r = np.sqrt(((X - cx) / ax) ** 2 + ((Y - cy) / ay) ** 2)
    return soft_step((1.0 - r) * min(ax, ay), edge)


def segment_distance(X: np.ndarray, Y: np.ndarray, p0: tuple[float, float],
                     p1: tuple[float, float]) -> np.ndarray:
    """Distance in mm from every pixel to the segment p0-p1."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((X - x0) * dx + (Y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(X - (x0 + t * dx), Y - (y0 + t * dy))


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, scale_px: float) -> np.ndarray:
    """Gaussian random field with correlation length ``scale_px``: zero mean, unit std."""
    rows, cols = shape
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    transfer = np.exp(-2.0 * (np.pi * scale_px) ** 2 * (fy**2 + fx**2)).astype(np.float32)
    white = rng.standard_normal(shape, dtype=np.float32)
    field = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=shape)
    field -= field.mean()
    return field / (field.std() + np.float32(1e-12))


def _faded(scale: float, visibility: float) -> float:
    """A finding's enlargement ``scale`` drawn at ``visibility``; exactly ``scale`` at 1, so
    that the default images keep their bytes."""
    return scale if visibility == 1.0 else 1.0 + (scale - 1.0) * visibility


def _paint(image: np.ndarray, mask: np.ndarray, value: float | np.ndarray) -> np.ndarray:
    return image * (1.0 - mask) + value * mask


def chest_radiograph(shape: tuple[int, int], spacing_mm: float, *, bmi: float, sex: str,
                     findings: Collection[str], view: str, rng: np.random.Generator,
                     shift_mm: tuple[float, float] = (0.0, 0.0),
                     magnification: float = 1.0, visibility: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A frontal chest radiograph and its lung mask.

    ``visibility`` scales the effect of every visible pathology (1: as drawn, 0: not drawn;
    support devices are not pathology and stay); at 1 the image is what it always was.

    Visible findings: Cardiomegaly (larger heart), Enlarged Cardiomediastinum (wider
    mediastinum), Pleural Effusion (a blunted lung base), Lung Opacity (a soft blob), Edema
    (perihilar haze), Support Devices (a thin bright tube). The other findings are labels
    only. AP views magnify the heart. Returns (intensity in [0, 1] before the race signal,
    uint8 lung mask).
    """
    bmi = float(bmi)
    # Patient positioning varies a little from image to image.
    jitter = (float(rng.normal(0.0, 4.0)), float(rng.normal(0.0, 5.0)))
    X, Y = mm_grid(shape, spacing_mm, (shift_mm[0] + jitter[0], shift_mm[1] + jitter[1]),
                   magnification)
    size = (1.04 if sex == "M" else 0.96) * float(rng.uniform(0.96, 1.04))
    ap = view == "AP"

    # Body: the chest wall's half-width grows with BMI; it narrows to the neck at the top.
    half_width = size * (145.0 + 3.2 * (bmi - 25.0))
    width_at_y = 40.0 + (half_width - 40.0) * soft_step(Y + 175.0, 15.0)
    body = soft_step(width_at_y - np.abs(X), 4.0)
    image = _paint(np.full(shape, _AIR, dtype=np.float32), body, _SOFT + 0.002 * (bmi - 25.0))

    # Lungs: two ellipses; the heart and mediastinum are painted over them.
    lung_cx, lung_cy = 68.0 * size, -15.0 * size
    lung_ax, lung_ay = 52.0 * size, 118.0 * size * (0.95 if ap else 1.0)
    lungs = np.maximum(soft_ellipse(X, Y, -lung_cx, lung_cy, lung_ax, lung_ay, 3.0),
                       soft_ellipse(X, Y, lung_cx, lung_cy, lung_ax, lung_ay, 3.0))
    markings = 0.012 * smooth_noise(shape, rng, 1.5 / spacing_mm * 2.0)
    image = _paint(image, lungs, _LUNG + 0.001 * (bmi - 25.0) + markings)

    # Pleural effusion: fluid fills one lung base with a meniscus rising laterally.
    effusion = np.zeros(shape, dtype=np.float32)
    if "Pleural Effusion" in findings:
        side = float(rng.choice([-1.0, 1.0]))
        level = lung_cy + lung_ay * float(rng.uniform(0.55, 0.8))
        meniscus = level - 0.35 * np.clip(side * X - lung_cx + 10.0, 0.0, None)
        effusion = soft_step(Y - meniscus, 3.0) * soft_step(side * X, 3.0) * lungs
        image = _paint(image, effusion * visibility, _SOFT - 0.04)

    # Mediastinum and heart (patient's left is the image right on a frontal view).
    mediastinum_half = 26.0 * size * (_faded(1.4, visibility) if "Enlarged Cardiomediastinum" in findings else 1.0)
    mediastinum = soft_step(mediastinum_half - np.abs(X - 4.0), 3.0) * soft_step(Y + 150.0, 6.0)
    image = _paint(image, mediastinum, _HEART - 0.02)
    heart_scale = size * (_faded(1.3, visibility) if "Cardiomegaly" in findings else 1.0) * (1.1 if ap else 1.0)
    heart = soft_ellipse(X, Y, 22.0 * size, 55.0 * size, 58.0 * heart_scale, 46.0 * heart_scale,
                         3.0)
    image = _paint(image, heart, _HEART)

    # Bones: spine, ribs (curved periodic bands), clavicles; they add density.
    spine = soft_step(16.0 - np.abs(X), 2.0) * (0.75 + 0.25 * np.cos(2 * np.pi * Y / 28.0) ** 2)
    rib_phase = float(rng.uniform(0.0, 1.0))
    rib_wave = np.cos(2 * np.pi * ((Y + 0.0035 * X**2) / 26.0 + rib_phase)) ** 8
    lateral = np.abs(X)
    ribs = rib_wave * soft_step(lateral - 20.0, 3.0) * soft_step(half_width - 8.0 - lateral, 4.0)
    ribs *= soft_step(lung_cy + lung_ay - Y, 10.0) * soft_step(Y - (lung_cy - lung_ay - 10.0), 6.0)
    clavicles = np.zeros(shape, dtype=np.float32)
    for side in (-1.0, 1.0):
        d = segment_distance(X, Y, (side * 18.0, -128.0 * size),
                             (side * 125.0 * size, -150.0 * size))
        clavicles = np.maximum(clavicles, soft_step(5.0 - d, 1.5))
    image = image + _BONE_ADD * np.clip(0.9 * spine + 0.5 * ribs + 0.8 * clavicles, 0.0, 1.0) * body

    # Parenchymal findings.
    if "Lung Opacity" in findings:
        side = float(rng.choice([-1.0, 1.0]))
        cx = side * lung_cx + float(rng.uniform(-20.0, 20.0))
        cy = lung_cy + float(rng.uniform(-60.0, 70.0))
        sigma = float(rng.uniform(18.0, 30.0))
        image = image + 0.12 * visibility * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * sigma**2)) * lungs
    if "Edema" in findings:
        haze = sum(np.exp(-((X - side * 45.0) ** 2 + (Y - 10.0) ** 2) / (2 * 45.0**2))
                   for side in (-1.0, 1.0))
        image = image + 0.07 * visibility * haze * lungs
    if "Support Devices" in findings:
        top = (float(rng.uniform(-4, 4)), -260.0)
        tip = (float(rng.uniform(0, 12)), -40.0)
        d = segment_distance(X, Y, top, tip)
        image = image + 0.22 * soft_step(1.6 - d, 0.5)

    image = image + 0.006 * rng.standard_normal(shape, dtype=np.float32)
    lung_mask = (lungs > 0.5) & (heart < 0.5) & (mediastinum < 0.5) & (effusion < 0.5)
    return np.clip(image, 0.0, 1.0), lung_mask.astype(np.uint8)


def chest_ct(shape: tuple[int, int], spacing_mm: float, n_slices: int, *, bmi: float, sex: str,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An axial chest CT volume from lung apex (slice 0) to base, in HU, and its lung masks.

    Body ellipse and subcutaneous fat scale with BMI; the lungs grow from the apex and give
    way to the diaphragm at the base; the heart appears in the lower half; the vertebra,
    sternum and ribs are bone. Returns (float volume (n_slices, rows, cols), uint8 masks).
    """
    bmi = float(bmi)
    X, Y = mm_grid(shape, spacing_mm, (float(rng.normal(0.0, 4.0)), float(rng.normal(10.0, 4.0))))
    size = (1.04 if sex == "M" else 0.96) * float(rng.uniform(0.96, 1.04))
    fat = max(4.0, 6.0 + 1.6 * (bmi - 22.0))
    body_ax = size * 140.0 + fat
    body_ay = size * 95.0 + fat
    volume = np.empty((n_slices,) + shape, dtype=np.float32)
    masks = np.empty((n_slices,) + shape, dtype=np.uint8)
    texture = smooth_noise(shape, rng, 0.8)
    for k in range(n_slices):
        t = k / max(n_slices - 1, 1)
        # Lungs widen from the apex and shrink again over the domes of the diaphragm.
        lung_scale = (0.45 + 0.55 * math.sin(0.5 * math.pi * min(t / 0.6, 1.0))) * (
            1.0 - 0.55 * max(0.0, (t - 0.8) / 0.2) ** 1.5)
        shoulder = 1.0 + 0.12 * max(0.0, 0.25 - t) / 0.25  # wider slab at the shoulders
        body = soft_ellipse(X, Y, 0.0, 0.0, body_ax * shoulder, body_ay, 3.0)
        muscle = soft_ellipse(X, Y, 0.0, 0.0, body_ax * shoulder - fat, body_ay - fat, 3.0)
        image = _paint(np.full(shape, _HU_AIR, dtype=np.float32), body, _HU_FAT)
        image = _paint(image, muscle, _HU_SOFT)
        lung_ax, lung_ay = 52.0 * size * lung_scale, 68.0 * size * lung_scale
        lungs = np.maximum(soft_ellipse(X, Y, -62.0 * size, -4.0, lung_ax, lung_ay, 3.0),
                           soft_ellipse(X, Y, 62.0 * size, -4.0, lung_ax, lung_ay, 3.0))
        image = _paint(image, lungs, _HU_LUNG + 25.0 * texture)
        heart = np.zeros(shape, dtype=np.float32)
        if t > 0.4:
            r = 48.0 * size * math.sin(math.pi * min((t - 0.4) / 0.7, 1.0)) + 1e-3
            heart = soft_ellipse(X, Y, 18.0 * size, -22.0 * size, r * 1.15, r, 3.0)
            image = _paint(image, heart, _HU_BLOOD)
        mediastinum = (soft_step(20.0 * size - np.abs(X - 6.0), 3.0)
                       * soft_step(60.0 * size - np.abs(Y + 5.0), 3.0))
        image = _paint(image, mediastinum, _HU_SOFT)
        vertebra = soft_ellipse(X, Y, 0.0, 62.0 * size, 17.0, 15.0, 2.0)
        sternum = soft_ellipse(X, Y, 0.0, -body_ay + fat + 10.0, 14.0, 6.0, 2.0) * (t < 0.85)
        theta = np.arctan2(Y, X)
        inner_ax, inner_ay = body_ax * shoulder - fat, body_ay - fat
        ring = (soft_ellipse(X, Y, 0.0, 0.0, inner_ax - 2.0, inner_ay - 2.0, 2.0)
                - soft_ellipse(X, Y, 0.0, 0.0, inner_ax - 12.0, inner_ay - 12.0, 2.0))
        ribs = np.clip(ring, 0.0, 1.0) * (np.cos(6.0 * theta + 3.0 * t) > 0.3)
        bone = np.clip(vertebra + sternum + ribs, 0.0, 1.0)
        image = _paint(image, bone, _HU_BONE)
        image = image + 12.0 * rng.standard_normal(shape, dtype=np.float32)
        volume[k] = image
        masks[k] = ((lungs > 0.5) & (heart < 0.5) & (mediastinum < 0.5)).astype(np.uint8)
    return volume, masks


def mammogram(shape: tuple[int, int], spacing_mm: float, *, view: str, laterality: str,
              density: str, bmi: float, rng: np.random.Generator) -> np.ndarray:
    """A CC or MLO mammogram: breast outline, skin line, pectoral muscle on MLO, and
    fibroglandular texture whose area fraction follows the BI-RADS density (A-D).

    The chest wall is at the left edge for a right breast and at the right edge for a left
    one. Returns intensity in [0, 1] before the race signal.
    """
    rows, cols = shape
    bmi = float(bmi)
    X, Y = mm_grid(shape, spacing_mm)
    x_wall = X - X.min()  # distance from the chest wall (left edge) in mm
    size = float(rng.uniform(0.92, 1.08)) * (1.0 + 0.012 * (bmi - 27.0))
    depth = min(0.9 * cols * spacing_mm, 125.0 * size)
    half_height = min(0.47 * rows * spacing_mm, 92.0 * size)
    centre_y = float(rng.normal(0.0, 4.0)) + (12.0 if view == "MLO" else 0.0)
    r = np.sqrt((x_wall / depth) ** 2 + ((Y - centre_y) / half_height) ** 2)
    breast = soft_step((1.0 - r) * depth, 2.0)
    image = _paint(np.full(shape, 0.04, dtype=np.float32), breast, 0.22)

    fraction = {"A": 0.08, "B": 0.25, "C": 0.5, "D": 0.75}[density]
    fraction = float(np.clip(fraction + float(rng.normal(0.0, 0.04)), 0.03, 0.9))
    # Glandular tissue concentrates behind the nipple, away from the skin.
    texture = smooth_noise(shape, rng, 3.0) + 0.6 * smooth_noise(shape, rng, 8.0)
    texture += 1.2 * (0.6 - r)
    inside = texture[breast > 0.5]
    threshold = float(np.quantile(inside, 1.0 - fraction)) if inside.size else 0.0
    gland = soft_step(texture - threshold, 0.25) * soft_step((0.93 - r) * depth, 2.0)
    image = _paint(image, gland * breast, 0.55)
    inside_mm = (1.0 - r) * depth
    skin = np.clip(soft_step(inside_mm, 1.0) - soft_step(inside_mm - 2.5, 1.0), 0.0, 1.0)
    image = image + 0.08 * skin

    if view == "MLO":
        # Pectoral muscle: a triangle in the upper chest-wall corner.
        y_top = Y - Y.min()
        pect_depth = float(rng.uniform(0.25, 0.35)) * cols * spacing_mm
        pect_height = float(rng.uniform(0.45, 0.6)) * rows * spacing_mm
        pectoral = soft_step(1.0 - x_wall / pect_depth - y_top / pect_height, 0.02)
        image = _paint(image, pectoral, 0.62)

    image = image + 0.006 * rng.standard_normal(shape, dtype=np.float32)
    if laterality == "L":
        image = image[:, ::-1]
    return np.clip(image, 0.0, 1.0)
