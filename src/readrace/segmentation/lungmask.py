"""CT lungs by lungmask (Hofmanninger et al. 2020), from a local weights file only.

An optional method (``ct_method: lungmask`` in a segmentation block, the package from the
``lungmask`` extra): the default run never needs it. lungmask downloads its weights from
GitHub when it is given only a model name; readrace always gives it the file of
``lungmask.weights`` (its ``LMInferer(modelpath=...)``, which then reads that file and
nothing else), so no job touches the network. The file's last layer says how many classes
the network has (R231: background, right lung, left lung); every class above 0 is lung.

Each series is given to lungmask as its HU volume in slice order (the cache's windowed
values inverted, readrace.segmentation.ct.hounsfield: exact inside the window), and the
masks are written back to the series' cache rows.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readrace.segmentation.ct import hounsfield
from readrace.segmentation.masks import MASK_DTYPE, MaskError

#: What ``pip install`` adds for this method.
EXTRA = "readrace[lungmask]"


def installed() -> bool:
    """Whether the lungmask package can be imported (checked without importing torch)."""
    return importlib.util.find_spec("lungmask") is not None


def weights_problem(path: str | Path, key: str) -> str | None:
    """Why the weights file at ``path`` (config key ``key``) cannot be read, or None."""
    if not Path(path).is_file():
        return (f"{key}: lungmask weights file {path} does not exist (readrace reads lungmask's weights "
                f"from this local file only, never from the network)")
    return None


def inferer(settings: dict[str, Any], device: str = "cpu") -> Any:
    """lungmask's ``LMInferer`` on the local weights of ``settings`` (``weights``, ``batch_size``)."""
    if not installed():
        raise MaskError(f"ct_method lungmask: the lungmask package is not installed (pip install '{EXTRA}')")
    problem = weights_problem(settings["weights"], "lungmask.weights")
    if problem:
        raise MaskError(problem)
    from lungmask import LMInferer

    return LMInferer(modelpath=str(settings["weights"]), force_cpu=not str(device).startswith("cuda"),
                     batch_size=int(settings["batch_size"]), volume_postprocessing=True, tqdm_disable=True)


def lungmask_masks(manifest: pd.DataFrame, images: np.ndarray, window: dict[str, float], settings: dict[str, Any],
                   device: str = "cpu") -> np.ndarray:
    """Lung masks of every cache row of a CT dataset by lungmask, series by series (module doc)."""
    model = inferer(settings, device)
    masks = np.zeros(images.shape, MASK_DTYPE)
    order = manifest.sort_values(["series_id", "slice_index"], kind="stable")
    for _, series in order.groupby("series_id", sort=False):
        rows = series["cache_index"].to_numpy()
        volume = hounsfield(images[rows], window)
        labels = np.asarray(model.apply(volume))
        if labels.shape != volume.shape:
            raise MaskError(f"lungmask returned masks of shape {labels.shape} for a series of shape {volume.shape}")
        masks[rows] = (labels > 0).astype(MASK_DTYPE)
    return masks
