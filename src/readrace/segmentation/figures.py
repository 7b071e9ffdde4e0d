"""The segmentation figure: lung masks drawn over sample images of every segmented dataset.

One row per dataset, ``n_samples`` images each (drawn with a seeded generator from the rows
whose mask is not empty, so a CT row shows slices through the lungs), the mask's outline in
colour over the cached grey image. Built without pyplot, like readrace.evaluation.figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from readrace.evaluation.figures import _save


def sample_rows(masks: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` sorted rows with a non-empty mask (any rows if none is)."""
    area = np.asarray(masks).reshape(len(masks), -1).sum(axis=1)
    candidates = np.flatnonzero(area > 0) if (area > 0).any() else np.arange(len(masks))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))


def plot_mask_overlays(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], out_path: str | os.PathLike,
                       n_samples: int = 4, seed: int = 0) -> None:
    """``panels``: (dataset name, cache images, masks) per row of the figure."""
    if not panels:
        raise ValueError("no segmented dataset to draw")
    figure = Figure(figsize=(2.0 * n_samples, 2.1 * len(panels)))
    axes = figure.subplots(len(panels), n_samples, squeeze=False)
    for r, (name, images, masks) in enumerate(panels):
        rows = sample_rows(masks, n_samples, seed)
        for c in range(n_samples):
            ax = axes[r][c]
            ax.set_axis_off()
            if c >= len(rows):
                continue
            ax.imshow(np.asarray(images[rows[c]], dtype=np.float32), cmap="gray", vmin=0, vmax=1)
            mask = np.asarray(masks[rows[c]], dtype=float)
            if mask.any():
                ax.contour(mask, levels=[0.5], colors="tab:orange", linewidths=0.8)
            if c == 0:
                ax.set_title(name, fontsize=8, loc="left")
    _save(figure, out_path)
