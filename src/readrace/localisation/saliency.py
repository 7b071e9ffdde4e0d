"""Grad-CAM saliency of a race model: mean maps per class, the share of saliency per region,
and each image's most salient region for the saliency-guided occlusion.

Grad-CAM comes from the grad-cam package (``pytorch_grad_cam``) on the last convolutional
block of every architecture readrace trains whose map has at least 4 cells per side
(:func:`target_layer`: the last block at the paper's 224-320 px; the one before it on a
64 px cache, where the last is 2x2 and measured useless for a 3x3 grid: with signal planted
in cell (0, 0), layer4 put 6.5% of the saliency there, layer3 21%, for 10.8% of the area).
The map is computed at
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
from readrace.transforms.perturbation_ids import grid_bounds

__all__ = ["MIN_MAP_SIZE", "SaliencyResult", "candidate_layers", "target_layer", "gradcam_maps", "salient_box", "region_shares", "saliency_of_model"]


#: The coarsest Grad-CAM map readrace reads, in cells per side: a 2x2 map (ResNet's layer4 on a
#: 64 px cache) cannot say which cell of the 3x3 grid is salient.
MIN_MAP_SIZE = 4


def candidate_layers(model: nn.Module, arch: str) -> list[tuple[str, nn.Module]]:
    """The layers Grad-CAM may read for ``arch``, deepest first: the last block of the
    feature extractor (the grad-cam package's choice: ``layer4[-1]``, ``features[-1]``),
    then the last blocks at 1/16 and 1/8 of the input."""
    if arch.startswith("resnet"):
        return [("layer4[-1]", model.layer4[-1]), ("layer3[-1]", model.layer3[-1]), ("layer2[-1]", model.layer2[-1])]
    if arch.startswith("densenet"):
        return [("features[-1]", model.features[-1]), ("features.denseblock3", model.features.denseblock3),
                ("features.denseblock2", model.features.denseblock2)]
    if arch.startswith("efficientnet"):
        return [("features[-1]", model.features[-1]), ("features[5]", model.features[5]), ("features[3]", model.features[3])]
    if arch == "small_cnn":
        # The ReLU closing each of its three stride-2 stages.
        return [("features[-1]", model.features[-1]), ("features[5]", model.features[5]), ("features[2]", model.features[2])]
    raise ValueError(
        f"no Grad-CAM target layer is known for architecture {arch!r} (resnet*, densenet*, efficientnet*, small_cnn)"
    )


def target_layer(model: nn.Module, arch: str, size: int = 224) -> tuple[str, nn.Module]:
    """The deepest candidate layer whose map on a ``size`` px input has at least
    :data:`MIN_MAP_SIZE` cells per side (on the paper's 224-320 px images: the last block;
    on a 64 px cache: the block before it), by name."""
    candidates = candidate_layers(model, arch)
    sizes: dict[str, int] = {}

    def recorder(name: str):
        def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
            sizes[name] = min(output.shape[-2:])  # returns None: a forward hook's value replaces the output
        return hook

    hooks = [layer.register_forward_hook(recorder(name)) for name, layer in candidates]
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()(torch.zeros(1, 1, size, size, device=next(model.parameters()).device))
            model.train(was_training)
    finally:
        for hook in hooks:
            hook.remove()
    for name, layer in candidates:
        if sizes[name] >= MIN_MAP_SIZE:
            return name, layer
    return candidates[-1]


def gradcam_maps(model: nn.Module, arch: str, images: torch.Tensor, classes: np.ndarray,
                 batch_size: int = 64) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] of ``images`` (float ``(N, 1, H, W)`` in [0, 1],
    on the model's device) for the class index ``classes[i]`` of each image."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    out = []
    _, layer = target_layer(model, arch, images.shape[-1])
    with GradCAM(model=model, target_layers=[layer]) as cam:
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
