"""Image perturbations named by an id string, applied identically at train and test time.

An experiment coordinate names its perturbation by an id (``lpf-d10``, ``noise-0.1``, ...).
:func:`parse_perturbation` turns the id into a callable that works on a batch of cached
images on the training device (GPU or CPU)::

    perturb = parse_perturbation("hpf-d100")
    x = perturb(x)                       # x: float tensor (B, 1, H, W), values in [0, 1]
    x = parse_perturbation("noise-0.1")(x, generator=torch.Generator().manual_seed(0))

Every perturbation keeps the shape, dtype and device of its input and returns values in [0, 1].
Units, all on the grid of the cached images (the H x W the model sees):

``none``
    Identity.
``lpf-d{D}``, ``hpf-d{D}``
    Low-/high-pass filter with a circular mask on the centred 2-D spectrum. ``D`` is the
    DIAMETER of the circle in frequency bins, so the cut-off RADIUS is ``D/2`` cycles per
    image (bin ``k`` on an N-pixel axis is ``k`` cycles per image; on a non-square grid the
    radius is measured in cycles per image along each axis). Low-pass keeps frequencies with
    radius <= D/2, high-pass keeps radius > D/2 (so it always removes the mean).
``bpf-d{D1}-{D2}``, ``notch-d{D1}-{D2}``
    Band-pass keeps the annulus D1/2 < radius <= D2/2; notch removes exactly that annulus.
    Same units as above, D1 < D2.
``res-{N}``
    Resolution reduction: area-average down to N x N pixels, bilinear back up to H x W.
``noise-{S}``
    Additive Gaussian noise of standard deviation S in intensity units (the image range is
    [0, 1]), then clamped to [0, 1].
``blur-{S}``
    Gaussian blur with standard deviation S pixels (separable, kernel radius ceil(3 S)).
``boneclip-{F}``
    Intensities above F (a fraction of full brightness, 0 < F < 1) are set to F, then the
    image is divided by F so that it spans [0, 1] again (the paper clipped at 60%, F = 0.6).

``patch-{R}-{C}``, ``occlude-{R}-{C}``
    A cell of the 3x3 grid (row R, column C, from the top left): ``patch`` keeps the cell
    and sets the rest of the image to :data:`FILL`; ``occlude`` sets the cell to
    :data:`FILL`. The image keeps its size (the cell is not resized up, so the signal's
    spatial frequencies keep their units). Cell ``j`` of an n-pixel axis owns the pixels
    whose centres lie in ``[j/3, (j+1)/3)``: see
    :func:`readrace.transforms.perturbation_ids.grid_bounds` (64 px: 21, 22, 21 px).
``lung``, ``nonlung``, ``occlude-salient``
    Need a mask per image: built by :func:`readrace.transforms.sample.perturbation_transform`
    with the masks, not here (``lung`` keeps the lung mask and fills the rest; ``nonlung``
    fills the lungs; ``occlude-salient`` fills a model's most salient region).

The constant is :data:`FILL` = 0 (black) in the raw [0, 1] space, before the fixed input
normalisation: the paper "blackened" after ImageNet normalisation, which is mean grey.

The Fourier filters end with a per-image min-max rescale to [0, 1]: the paper's code saved its
filtered images rescaled to 8 bits; we keep the rescale (so filtered images have the same
intensity range as all others) but not the quantisation.

Ids must be written canonically so that one perturbation has one experiment coordinate:
integers without leading zeros, decimals without redundant zeros (``0.1``, ``2``; not
``0.10``, ``2.0``, ``.1``). The id grammar is in :mod:`readrace.transforms.perturbation_ids`, which does
not import torch, so that the Snakefile can check ids when it validates a config.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from readrace.transforms.perturbation_ids import (
    KNOWN_FORMS,
    format_decimal,
    grid_bounds,
    needs_masks,
    parse_perturbation_id,
)

#: The value a removed region is set to, in the raw [0, 1] space (black).
FILL = 0.0

__all__ = [
    "KNOWN_FORMS",
    "Perturbation",
    "parse_perturbation",
    "Identity",
    "LowPass",
    "HighPass",
    "BandPass",
    "Notch",
    "Resolution",
    "GaussianNoise",
    "GaussianBlur",
    "BoneClip",
    "GridCell",
    "FILL",
    "cell_mask",
]


@runtime_checkable
class Perturbation(Protocol):
    """A named, batched image perturbation: ``(B, C, H, W)`` floats in [0, 1] -> same."""

    id: str

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"expected a float tensor of shape (B, C, H, W), got {x.dtype} {tuple(x.shape)}"
        )


def _as_float32_at_least(x: torch.Tensor) -> torch.Tensor:
    # Half precision has no general FFT / conv support on CPU and too little precision for
    # a min-max rescale; compute in float32 and let the caller cast back.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class Identity:
    """``none``: returns its input unchanged."""

    id = "none"

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_batch(x)
        return x

    def __repr__(self) -> str:
        return "Identity()"


class _FourierFilter:
    """Base of the circular Fourier filters; subclasses say which radii they keep.

    Radii are compared as squared integers, ``4 (ky^2 + kx^2)`` against ``D^2``, so a
    frequency exactly on the circle is classified exactly (no floating-point edge cases).
    """

    id: str

    def __init__(self) -> None:
        self._masks: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def _keep(self, four_r2: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the frequencies kept, given ``4 * radius^2`` in bins^2."""
        raise NotImplementedError

    def mask(self, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The float 0/1 mask on the centred (fftshift-ed) spectrum of an H x W image."""
        device = torch.device(device)
        key = (height, width, device)
        if key not in self._masks:
            # Integer frequencies in cycles per image in fftshift order (DC at index n // 2):
            # arange(n) - n // 2 equals fftshift(fftfreq(n) * n) for even and odd n alike.
            ky = torch.arange(height) - height // 2
            kx = torch.arange(width) - width // 2
            four_r2 = 4 * (ky[:, None] ** 2 + kx[None, :] ** 2)
            self._masks[key] = self._keep(four_r2).to(device=device, dtype=torch.float32)
        return self._masks[key]

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_batch(x)
        work = _as_float32_at_least(x)
        spectrum = torch.fft.fftshift(torch.fft.fft2(work), dim=(-2, -1))
        spectrum = spectrum * self.mask(x.shape[-2], x.shape[-1], x.device)
        filtered = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real
        return _minmax_per_image(filtered).to(x.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


def _minmax_per_image(x: torch.Tensor) -> torch.Tensor:
    """Rescale each image of the batch to [0, 1]; a flat image becomes all zeros.

    "Flat" means a range below 1000 machine epsilons (about 1e-4 in float32): that is
    FFT round-off (a constant image through a high-pass filter), not image content, and
    stretching it would turn numerical noise into a full-contrast image.
    """
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    flat = span <= 1000 * torch.finfo(x.dtype).eps
    out = (x - lo) / torch.where(flat, torch.ones_like(span), span)
    return torch.where(flat, torch.zeros_like(out), out)


class LowPass(_FourierFilter):
    """``lpf-d{D}``: keeps frequencies of radius <= D/2 cycles per image (D = diameter)."""

    def __init__(self, diameter: int) -> None:
        super().__init__()
        self.diameter = diameter
        self.id = f"lpf-d{diameter}"

    def _keep(self, four_r2: torch.Tensor) -> torch.Tensor:
        return four_r2 <= self.diameter**2


class HighPass(_FourierFilter):
    """``hpf-d{D}``: keeps frequencies of radius > D/2 cycles per image (D = diameter)."""

    def __init__(self, diameter: int) -> None:
        super().__init__()
        self.diameter = diameter
        self.id = f"hpf-d{diameter}"

    def _keep(self, four_r2: torch.Tensor) -> torch.Tensor:
        return four_r2 > self.diameter**2


class BandPass(_FourierFilter):
    """``bpf-d{D1}-{D2}``: keeps D1/2 < radius <= D2/2 cycles per image (diameters)."""

    def __init__(self, inner: int, outer: int) -> None:
        super().__init__()
        self.inner, self.outer = inner, outer
        self.id = f"bpf-d{inner}-{outer}"

    def _keep(self, four_r2: torch.Tensor) -> torch.Tensor:
        return (four_r2 > self.inner**2) & (four_r2 <= self.outer**2)


class Notch(_FourierFilter):
    """``notch-d{D1}-{D2}``: removes D1/2 < radius <= D2/2 cycles per image (diameters)."""

    def __init__(self, inner: int, outer: int) -> None:
        super().__init__()
        self.inner, self.outer = inner, outer
        self.id = f"notch-d{inner}-{outer}"

    def _keep(self, four_r2: torch.Tensor) -> torch.Tensor:
        return (four_r2 <= self.inner**2) | (four_r2 > self.outer**2)


class Resolution:
    """``res-{N}``: area-average down to N x N pixels, then bilinear back up to H x W.

    N may not exceed H or W: the experiment is a resolution reduction, and a silent
    upsample would make a coordinate claim a reduction that never happened.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.id = f"res-{size}"

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_batch(x)
        height, width = x.shape[-2:]
        if self.size > min(height, width):
            raise ValueError(
                f"{self.id}: cannot reduce a {height}x{width} image to {self.size}x{self.size}"
            )
        work = _as_float32_at_least(x)
        # Area interpolation averages whole input pixels: an anti-aliased downsample.
        small = F.interpolate(work, size=(self.size, self.size), mode="area")
        big = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
        return big.clamp(0.0, 1.0).to(x.dtype)

    def __repr__(self) -> str:
        return f"Resolution({self.size})"


class GaussianNoise:
    """``noise-{S}``: adds N(0, S^2) noise (S in [0, 1] intensity units), clamps to [0, 1].

    Pass a ``torch.Generator`` on the tensor's device for reproducible noise; without one the
    global torch RNG is used.
    """

    def __init__(self, std: float) -> None:
        self.std = std
        self.id = f"noise-{format_decimal(std)}"

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_batch(x)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + self.std * noise).clamp(0.0, 1.0)

    def __repr__(self) -> str:
        return f"GaussianNoise({self.std})"


class GaussianBlur:
    """``blur-{S}``: Gaussian blur with sigma S pixels; kernel radius ceil(3 S).

    Separable convolution (rows then columns) with edge replication at the borders, so the
    image does not darken towards its edges.
    """

    def __init__(self, sigma: float) -> None:
        self.sigma = sigma
        self.radius = math.ceil(3 * sigma)
        self.id = f"blur-{format_decimal(sigma)}"

    def kernel(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The normalised 1-D kernel of length 2 * radius + 1."""
        offsets = torch.arange(-self.radius, self.radius + 1, device=device, dtype=torch.float64)
        weights = torch.exp(-0.5 * (offsets / self.sigma) ** 2)
        return (weights / weights.sum()).to(dtype)

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_batch(x)
        work = _as_float32_at_least(x)
        channels = work.shape[1]
        k = self.kernel(work.device, work.dtype)
        r = self.radius
        padded = F.pad(work, (r, r, r, r), mode="replicate")
        rows = F.conv2d(padded, k.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
        out = F.conv2d(rows, k.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
        return out.clamp(0.0, 1.0).to(x.dtype)

    def __repr__(self) -> str:
        return f"GaussianBlur({self.sigma})"


class BoneClip:
    """``boneclip-{F}``: sets intensities above F to F, then divides by F (back to [0, 1]).

    F is a fixed fraction of full brightness (not a per-image quantile), as in the paper's
    removal of bone density by clipping at 60% brightness (F = 0.6).
    """

    def __init__(self, level: float) -> None:
        self.level = level
        self.id = f"boneclip-{format_decimal(level)}"

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_batch(x)
        return x.clamp(max=self.level) / self.level

    def __repr__(self) -> str:
        return f"BoneClip({self.level})"


def cell_mask(row: int, col: int, height: int, width: int) -> torch.Tensor:
    """Boolean ``(height, width)`` mask of grid cell (row, col) (see :func:`grid_bounds`)."""
    (top, bottom), (left, right) = grid_bounds(height)[row], grid_bounds(width)[col]
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


class GridCell:
    """``patch-{R}-{C}`` (keep only the cell) or ``occlude-{R}-{C}`` (remove the cell).

    The removed pixels are set to :data:`FILL` in raw [0, 1] space.
    """

    def __init__(self, mode: str, row: int, col: int) -> None:
        if mode not in ("patch", "occlude"):
            raise ValueError(f"grid cell mode must be 'patch' or 'occlude', got {mode!r}")
        self.mode, self.row, self.col = mode, row, col
        self.id = f"{mode}-{row}-{col}"

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_batch(x)
        inside = cell_mask(self.row, self.col, x.shape[-2], x.shape[-1]).to(x.device)
        keep = inside if self.mode == "patch" else ~inside
        return torch.where(keep, x, torch.full((), FILL, dtype=x.dtype, device=x.device))

    def __repr__(self) -> str:
        return f"GridCell({self.mode!r}, {self.row}, {self.col})"


def parse_perturbation(pid: str) -> Perturbation:
    """Build the perturbation named by ``pid`` (see the module docstring for the forms).

    Raises:
        ValueError: the id is malformed or out of range (the message names the id and lists
            :data:`KNOWN_FORMS`), or it needs a mask per image (``lung``, ``nonlung``,
            ``occlude-salient``): build those with
            :func:`readrace.transforms.sample.perturbation_transform` and the masks.
    """
    parsed = parse_perturbation_id(pid)
    if needs_masks(pid) is not None:
        raise ValueError(
            f"perturbation {pid!r} reads a {needs_masks(pid)} mask per image: build it with "
            "readrace.transforms.sample.perturbation_transform(pid, masks=...)"
        )
    if parsed.name in ("patch", "occlude"):
        return GridCell(parsed.name, *parsed.params)
    return _BUILDERS[parsed.name](*parsed.params)


#: The class of each perturbation name; its constructor takes the id's params in order.
_BUILDERS: dict[str, type] = {
    "none": Identity,
    "lpf": LowPass,
    "hpf": HighPass,
    "bpf": BandPass,
    "notch": Notch,
    "res": Resolution,
    "noise": GaussianNoise,
    "blur": GaussianBlur,
    "boneclip": BoneClip,
}
