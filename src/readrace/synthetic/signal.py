"""The planted race signal: fixed band-limited class patterns and the regions they live in.

A class pattern is a sum of cosines at integer spatial frequencies ``(ky, kx)`` in cycles
per image (cycles per image height along rows, per image width along columns), with random
complex coefficients drawn from ``SignalSpec.seed`` and the class index. The coefficients
belong to the frequencies, not to a pixel grid, so the same pattern is rendered on any grid:
site A's 256x256, site B's 240x200 and a 64x64 cache all see the same pattern, which is what
lets a model trained at one site recognise the signal at another. All frequencies stay
below ``MAX_CYCLES`` (28), so rendering never aliases on a grid of 64 or more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from readrace.synthetic.spec import MAX_CYCLES, SignalSpec, parse_region


def _half_plane_frequencies() -> tuple[np.ndarray, np.ndarray]:
    """Integer frequencies (ky, kx) with |k| < MAX_CYCLES, one of each +-k pair, fixed order."""
    kmax = int(np.ceil(MAX_CYCLES)) - 1
    ky, kx = np.meshgrid(np.arange(-kmax, kmax + 1), np.arange(0, kmax + 1), indexing="ij")
    ky, kx = ky.ravel(), kx.ravel()
    keep = ((kx > 0) | ((kx == 0) & (ky > 0))) & (np.hypot(ky, kx) < MAX_CYCLES)
    return ky[keep], kx[keep]


_KY, _KX = _half_plane_frequencies()
_RADIUS = np.hypot(_KY, _KX)


def _render(ky: np.ndarray, kx: np.ndarray, coeffs: np.ndarray,
            shape: tuple[int, int]) -> np.ndarray:
    """Sum of ``Re(c exp(2 pi i (ky y / rows + kx x / cols)))`` on the pixel grid ``shape``."""
    rows, cols = shape
    if min(rows, cols) <= 2 * int(np.max(_RADIUS)):
        raise ValueError(f"grid {shape} is too small to render frequencies below {MAX_CYCLES}")
    spectrum = np.zeros(shape, dtype=complex)
    # Hermitian pairs make the inverse FFT real; (ky, kx) and (-ky, -kx) never coincide.
    spectrum[ky % rows, kx % cols] = coeffs
    spectrum[(-ky) % rows, (-kx) % cols] = np.conj(coeffs)
    return np.fft.ifft2(spectrum).real * (rows * cols)


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def class_pattern(signal: SignalSpec, class_index: int, shape: tuple[int, int]) -> np.ndarray:
    """The pattern of class ``class_index`` on the grid ``shape``: zero mean, unit RMS.

    Each band is rendered and normalised to unit RMS on its own before the sum is
    normalised again, so every band carries the same share of the energy (a low-pass or a
    high-pass ablation each keeps half the signal with the default bands).
    """
    rng = np.random.default_rng([signal.seed, class_index])
    # Draw a coefficient for every frequency in a fixed order, whatever the bands: the
    # low-band pattern of a class is then exactly the low-band part of its default pattern.
    coeffs = rng.standard_normal(_KY.size) + 1j * rng.standard_normal(_KY.size)
    total = np.zeros(shape)
    for lo, hi in signal.bands:
        selected = (_RADIUS >= lo) & (_RADIUS < hi)
        component = _render(_KY[selected], _KX[selected], coeffs[selected], shape)
        total += component / _rms(component)
    return total / _rms(total)


def class_patterns(signal: SignalSpec, classes: Sequence[str],
                   shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """One pattern per task class, keyed by class name; class k uses pattern index k."""
    return {name: class_pattern(signal, k, shape) for k, name in enumerate(classes)}


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur by FFT (periodic edges; our masks are zero near the image border)."""
    rows, cols = image.shape
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.fftfreq(cols)[None, :]
    transfer = np.exp(-2.0 * (np.pi * sigma_px) ** 2 * (fy**2 + fx**2))
    return np.fft.ifft2(np.fft.fft2(image) * transfer).real


def _smooth_window(n: int, lo: float, hi: float, edge: float) -> np.ndarray:
    """1-D window that is ~1 on pixel centres in [lo, hi) (fractions of n) with soft edges."""
    t = (np.arange(n) + 0.5) / n
    rise = 0.5 * (1.0 + np.tanh((t - lo) / edge)) if lo > 0 else np.ones(n)
    fall = 0.5 * (1.0 - np.tanh((t - hi) / edge)) if hi < 1 else np.ones(n)
    return rise * fall


def region_weight(region: str, shape: tuple[int, int],
                  lung_mask: np.ndarray | None = None) -> np.ndarray:
    """Weight in [0, 1] that confines the pattern to ``region`` on the grid ``shape``.

    "lung" is the lung mask blurred by 1 % of the image size (a hard edge would add
    frequencies outside the bands), "nonlung" its complement, "grid-R-C" a 3x3 grid cell
    with edges 1 % of the image wide.
    """
    kind, row, col = parse_region(region)
    if kind == "all":
        return np.ones(shape)
    if kind == "grid":
        edge = 0.01
        return np.outer(_smooth_window(shape[0], row / 3, (row + 1) / 3, edge),
                        _smooth_window(shape[1], col / 3, (col + 1) / 3, edge))
    if lung_mask is None:
        raise ValueError(f"signal region {region!r} needs a lung mask")
    lung = np.clip(gaussian_blur(lung_mask.astype(float), 0.01 * max(shape)), 0.0, 1.0)
    return lung if kind == "lung" else 1.0 - lung
