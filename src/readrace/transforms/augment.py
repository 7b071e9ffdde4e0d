"""Batched training-time augmentation that runs on the training device.

Training uses small random rotations, zooms and horizontal flips, as the paper's models did.
The three are composed into one affine matrix per image and applied to the whole batch
with a single ``affine_grid`` / ``grid_sample`` call, so augmentation costs one resampling pass
on the GPU instead of per-image PIL work in data-loader workers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class RandomAffine:
    """Random rotation, zoom and horizontal flip of a batch ``(B, C, H, W)``.

    Each image gets its own rotation angle drawn uniformly from ``[-degrees, degrees]``, zoom
    factor drawn uniformly from ``scale`` (above 1 magnifies the content) and a horizontal flip
    with probability ``hflip``. The parameters are drawn on ``generator``'s device (CPU when no
    generator is given, from torch's global RNG), so a seeded generator gives the same
    augmentation on CPU and GPU. Resampling is bilinear; pixels that come from outside the
    image are 0, which for inputs in [0, 1] (before normalisation) is black background.

    Parameters
    ----------
    degrees:
        Largest rotation, in degrees, either way.
    scale:
        ``(low, high)`` range of the zoom factor.
    hflip:
        Probability of a horizontal flip.

    Examples
    --------
    >>> augment = RandomAffine(degrees=10, scale=(0.9, 1.1), hflip=0.5)
    >>> x = torch.rand(8, 1, 64, 64)
    >>> y = augment(x, generator=torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        degrees: float = 10.0,
        scale: tuple[float, float] = (0.9, 1.1),
        hflip: float = 0.5,
    ) -> None:
        if degrees < 0:
            raise ValueError(f"degrees must be >= 0, got {degrees}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip must be a probability, got {hflip}")
        self.degrees = float(degrees)
        self.scale = (float(scale[0]), float(scale[1]))
        self.hflip = float(hflip)

    def __repr__(self) -> str:
        return f"RandomAffine(degrees={self.degrees}, scale={self.scale}, hflip={self.hflip})"

    def matrices(self, batch_size: int, height: int, width: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw the ``(batch_size, 2, 3)`` ``affine_grid`` matrices (on the generator's device).

        A matrix maps an output pixel's normalised coordinates to the input coordinates it
        samples from. Rotation is done in pixel units, so that it stays a rotation (not a
        shear) on non-square images.
        """
        device = generator.device if generator is not None else torch.device("cpu")
        # Always three draws per image, whatever the settings, so the generator advances by
        # the same amount for every configuration.
        u = torch.rand(batch_size, 3, generator=generator, device=device, dtype=torch.float64)
        angle = torch.deg2rad((2.0 * u[:, 0] - 1.0) * self.degrees)
        zoom = self.scale[0] + u[:, 1] * (self.scale[1] - self.scale[0])
        flip = torch.where(u[:, 2] < self.hflip, -1.0, 1.0).to(torch.float64)

        cos, sin = torch.cos(angle), torch.sin(angle)
        # Input (pixel units) = R(angle) @ diag(flip, 1) @ output / zoom; then conjugate with
        # D = diag(W/2, H/2) to go from normalised coordinates to pixels and back.
        aspect = width / height
        theta = torch.zeros(batch_size, 2, 3, dtype=torch.float64, device=device)
        theta[:, 0, 0] = cos * flip / zoom
        theta[:, 0, 1] = -sin / aspect / zoom
        theta[:, 1, 0] = sin * flip * aspect / zoom
        theta[:, 1, 1] = cos / zoom
        return theta

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment ``x`` of shape ``(B, C, H, W)`` (floating point); returns a new tensor."""
        if x.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        theta = self.matrices(b, h, w, generator).to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
