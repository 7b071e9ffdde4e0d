"""Grad-CAM saliency of a race model: mean maps per class, the share of saliency per region,
and each image's most salient region for the saliency-guided occlusion.

Grad-CAM comes from the grad-cam package (``pytorch_grad_cam``) on the last convolutional
block of every architecture readrace trains (:func:`target_layer`). The map is computed at
the cache grid's size (the package resizes it to the input), so a region found on it is in
the test image's own pixels (the paper resized a 224 px image's map to 256 px and misplaced
its boxes).

- Mean maps: the map of the image's true class, per image scaled to [0, 1] by the package,
  averaged over the test images of each class.
- Shares: per image, the map divided by its sum; the share inside the lung mask, outside it,
  and in each cell of the 3x3 grid, averaged over the images of each class (and over all).
  ``area`` is the mean fraction of the image the region covers: the share a map spread
  evenly would give.
- Salient region: on the map of the *predicted* class (the true class would make the
  occlusion depend on the label it is then tested against), the bounding box of the
  connected region around the maximum of the pixels at or above ``fraction`` of the maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from torch import nn

from readrace.training.device import to_model_input
from readrace.transforms.perturbation_ids import GRID_CELLS, grid_bounds

__all__ = ["SaliencyResult", "target_layer", "gradcam_maps", "salient_box", "region_shares", "saliency_of_model"]


def target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The layer Grad-CAM reads for ``arch``: the last block of the feature extractor."""
    if arch.startswith("resnet"):
        return model.layer4[-1]
    if arch.startswith(("densenet", "efficientnet")):
        return model.features[-1]
    raise ValueError(f"no Grad-CAM target layer is known for architecture {arch!r} (resnet*, densenet*, efficientnet*)")


def gradcam_maps(model: nn.Module, arch: str, images: torch.Tensor, classes: np.ndarray,
                 batch_size: int = 64) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] of ``images`` (float ``(N, 1, H, W)`` in [0, 1],
    on the model's device) for the class index ``classes[i]`` of each image."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    out = []
    with GradCAM(model=model, target_layers=[target_layer(model, arch)]) as cam:
        for start in range(0, len(images), batch_size):
            x = to_model_input(images[start:start + batch_size], images.device)
            targets = [ClassifierOutputTarget(int(k)) for k in classes[start:start + batch_size]]
            out.append(cam(input_tensor=x, targets=targets))
    return np.concatenate(out).astype(np.float32)


def salient_box(cam: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the bounding box of the connected region around the maximum of
    ``cam`` (H, W) of the pixels at or above ``fraction`` of the maximum; empty for a map
    that is zero everywhere."""
    box = np.zeros(cam.shape, dtype=bool)
    peak = cam.max()
    if not peak > 0:
        return box
    labels, _ = ndimage.label(cam >= fraction * peak)
    region = labels == labels[np.unravel_index(np.argmax(cam), cam.shape)]
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
    return box


def _regions(shape: tuple[int, int], lung: np.ndarray | None) -> dict[str, np.ndarray]:
    """Region name -> boolean mask ``(N or 1, H, W)``: the grid cells, and lung / nonlung."""
    (height, width) = shape
    regions = {}
    for r, (top, bottom) in enumerate(grid_bounds(height)):
        for c, (left, right) in enumerate(grid_bounds(width)):
            cell = np.zeros((1, height, width), dtype=bool)
            cell[:, top:bottom, left:right] = True
            regions[f"cell-{r}-{c}"] = cell
    if lung is not None:
        regions["lung"] = lung != 0
        regions["nonlung"] = lung == 0
    return regions


def region_shares(cams: np.ndarray, labels: np.ndarray, classes: list[str], lung: np.ndarray | None) -> pd.DataFrame:
    """The mean share of saliency per (class, region): rows ``class, region, share, area,
    n_images`` (class ``all`` over every image). Images whose map is zero are left out."""
    total = cams.sum(axis=(1, 2))
    scored = total > 0
    normalised = cams[scored] / total[scored, None, None]
    labels = labels[scored]
    rows = []
    for region, mask in _regions(cams.shape[1:], None if lung is None else lung[scored]).items():
        share = (normalised * mask).sum(axis=(1, 2))
        area = np.broadcast_to(mask, normalised.shape).mean(axis=(1, 2))
        for name, keep in [("all", np.ones(len(labels), dtype=bool))] + [(c, labels == k) for k, c in enumerate(classes)]:
            if keep.any():
                rows.append({"class": name, "region": region, "share": float(share[keep].mean()),
                             "area": float(area[keep].mean()), "n_images": int(keep.sum())})
    return pd.DataFrame(rows, columns=["class", "region", "share", "area", "n_images"])


@dataclass
class SaliencyResult:
    """What :func:`saliency_of_model` computes for the test images of one dataset."""

    mean_maps: np.ndarray  # (K, H, W): mean Grad-CAM of each class over its images (NaN if none)
    mean_images: np.ndarray  # (K, H, W): mean test image of each class
    shares: pd.DataFrame  # region_shares
    salient: np.ndarray  # uint8 (n_cache_rows, H, W): 1 in the salient box of each test row


def saliency_of_model(model: nn.Module, arch: str, images: np.ndarray, rows: np.ndarray, labels: np.ndarray,
                      classes: list[str], *, lung: np.ndarray | None, fraction: float,
                      device: torch.device, batch_size: int = 64) -> SaliencyResult:
    """Grad-CAM of the test ``rows`` of the cache ``images``, with their true class
    ``labels``; ``lung`` the dataset's mask cache (None where it has none)."""
    model = model.to(device).eval()
    x = torch.from_numpy(np.asarray(images[np.sort(rows)], dtype=np.float32))[:, None].to(device)
    order = np.argsort(rows, kind="stable")
    rows, labels = rows[order], labels[order]
    with torch.inference_mode():
        predicted = torch.cat([model(to_model_input(x[i:i + batch_size], device)).argmax(1).cpu()
                               for i in range(0, len(x), batch_size)]).numpy()
    true_maps = gradcam_maps(model, arch, x, labels, batch_size)
    predicted_maps = gradcam_maps(model, arch, x, predicted, batch_size)
    height, width = images.shape[1:]
    mean_maps = np.full((len(classes), height, width), np.nan, dtype=np.float32)
    mean_images = np.full_like(mean_maps, np.nan)
    pixels = x[:, 0].cpu().numpy()
    for k in range(len(classes)):
        if (labels == k).any():
            mean_maps[k] = true_maps[labels == k].mean(axis=0)
            mean_images[k] = pixels[labels == k].mean(axis=0)
    salient = np.zeros((len(images), height, width), dtype=np.uint8)
    for row, cam in zip(rows, predicted_maps):
        salient[row] = salient_box(cam, fraction)
    shares = region_shares(true_maps, labels, classes, None if lung is None else np.asarray(lung[rows]))
    return SaliencyResult(mean_maps, mean_images, shares, salient)
