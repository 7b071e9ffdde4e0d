"""Chest-radiograph lung segmentation: a MONAI U-Net trained by readrace's engine.

The network is MONAI's 2-D ``UNet`` (one input channel, two output classes: background and
lung) and the objective MONAI's ``DiceCELoss`` (softmax, one-hot targets); the validation
score that selects the best epoch is the mean per-image Dice of the lung class. Both are
:class:`readrace.training.parts.TrainingParts`, so training is :func:`readrace.training.engine.fit`
with its seeds, device handling, checkpoints, resumption and stale-run refusal; the engine's
``val_auc`` log column holds the validation Dice here.

The predicted mask is the argmax; with ``largest_components: k`` (default 2, the two lungs)
only the ``k`` largest connected components are kept and their holes filled, which removes
stray islands a small network leaves (0 keeps the argmax as it is).

No augmentation: flips and rotations of the image alone would move it off its mask.
Several train datasets are concatenated in memory (mask sets are small: hundreds of images).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from torch import nn

from readrace.segmentation.masks import MASK_DTYPE, MaskError, has_mask
from readrace.tasks import lung_task
from readrace.training.batches import BatchReader
from readrace.training.checkpoint import CHECKPOINT_FILE, StaleCheckpointError, json_digest
from readrace.training.config import TrainConfig
from readrace.training.device import resolve_device
from readrace.training.engine import TrainResult, fit
from readrace.training.inference import infer_logits, load_model
from readrace.training.parts import TrainingParts
from readrace.transforms.sample import Compose

log = logging.getLogger(__name__)

ARCH = "unet"
N_CLASSES = 2  # background, lung


@dataclass(frozen=True)
class UNetBuilder:
    """A TrainingParts model builder of MONAI's 2-D UNet with these channels and strides."""

    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1

    @property
    def id(self) -> str:
        return f"monai-unet-c{'-'.join(map(str, self.channels))}-s{'-'.join(map(str, self.strides))}-r{self.num_res_units}"

    def __call__(self, arch: str, n_outputs: int, pretrained: str | None = None) -> nn.Module:
        from monai.networks.nets import UNet

        if arch != ARCH:
            raise ValueError(f"UNetBuilder builds {ARCH!r}, not {arch!r}")
        if pretrained is not None:
            raise ValueError("the lung U-Net is trained from scratch (pretrained must be None)")
        return UNet(spatial_dims=2, in_channels=1, out_channels=n_outputs, channels=self.channels,
                    strides=self.strides, num_res_units=self.num_res_units)


def dice_scores(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image Dice of binary masks ``(N, H, W)``; 1 where both are empty (nothing to find,
    nothing found), 0 where only one is."""
    predicted = np.asarray(predicted).reshape(len(predicted), -1).astype(bool)
    truth = np.asarray(truth).reshape(len(truth), -1).astype(bool)
    overlap = (predicted & truth).sum(axis=1)
    total = predicted.sum(axis=1) + truth.sum(axis=1)
    return np.where(total == 0, 1.0, 2.0 * overlap / np.maximum(total, 1))


class SegmentationObjective:
    """Per-pixel background / lung: MONAI DiceCELoss on softmax logits ``(B, 2, H, W)``,
    targets the uint8 0/1 masks ``(N, H, W)``; score: mean lung Dice of the argmax."""

    id = "segmentation-dicece"

    def __init__(self) -> None:
        from monai.losses import DiceCELoss

        self._loss = DiceCELoss(to_onehot_y=True, softmax=True)

    def targets(self, labels: np.ndarray, n_outputs: int, rows: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim != 3:
            raise MaskError(f"segmentation targets must be masks (N, H, W), got shape {labels.shape}")
        used = labels[np.unique(rows)]
        if not has_mask(used).all():
            raise MaskError("a training or validation row has no ground-truth mask")
        if used.max(initial=0) > 1:
            raise MaskError("segmentation targets must be 0 or 1")
        return labels.astype(MASK_DTYPE, copy=False)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets.unsqueeze(1).long())

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def score(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        return float(dice_scores(probabilities.argmax(axis=1), targets).mean())


def unet_parts(settings: dict[str, Any]) -> TrainingParts:
    builder = UNetBuilder(tuple(settings["channels"]), tuple(settings["strides"]), int(settings["num_res_units"]))
    return TrainingParts(model=builder, objective=SegmentationObjective())


@dataclass
class TrainingData:
    """The train datasets of one U-Net, concatenated: images, masks, and the train and
    validation rows of the concatenation."""

    images: np.ndarray
    masks: np.ndarray
    train_rows: np.ndarray
    val_rows: np.ndarray


def training_data(datasets: Sequence[tuple[str, pd.DataFrame, np.ndarray, np.ndarray]]) -> TrainingData:
    """``(name, manifest, images, truth masks)`` per dataset -> one training set; rows
    without ground truth are left out of both splits."""
    images, masks, train, val = [], [], [], []
    offset = 0
    for name, manifest, cache, truth in datasets:
        if truth.shape != cache.shape:
            raise MaskError(f"{name}: truth masks {truth.shape} do not match the cache {cache.shape}")
        if images and cache.shape[1:] != images[0].shape[1:]:
            raise MaskError(f"{name}: cache grid {cache.shape[1:]} differs from {images[0].shape[1:]}")
        known = has_mask(truth)
        for split, rows in (("train", train), ("validation", val)):
            index = manifest.loc[manifest["split"] == split, "cache_index"].to_numpy()
            index = index[known[index]]
            if len(index) == 0:
                raise MaskError(f"{name}: no {split} image has a ground-truth lung mask")
            rows.append(index + offset)
        images.append(np.asarray(cache))
        masks.append(np.asarray(truth))
        offset += len(cache)
    return TrainingData(np.concatenate(images), np.concatenate(masks), np.concatenate(train), np.concatenate(val))


def train_config(settings: dict[str, Any], seed: int, execution: dict[str, Any]) -> TrainConfig:
    return TrainConfig(arch=ARCH, n_classes=N_CLASSES, pretrained=None, epochs=settings["epochs"],
                       batch_size=settings["batch_size"], lr=settings["lr"], weight_decay=settings["weight_decay"],
                       patience=settings["patience"], seed=seed, device=execution["device"],
                       num_workers=0, preload_max_gb=execution["preload_max_gb"])


def train_unet(data: TrainingData, settings: dict[str, Any], seed: int, execution: dict[str, Any],
               out_dir: str | Path, cache_digests: Sequence[str], progress: bool = True) -> TrainResult:
    """Train the lung U-Net (a stale checkpoint is replaced, a matching one resumed)."""
    parts = unet_parts(settings)
    config = train_config(settings, seed, execution)
    task = lung_task("cxr").to_dict()
    fingerprint = json_digest({"caches": list(cache_digests), "task": task})
    arguments = dict(data_fingerprint=fingerprint, parts=parts, task=task, progress=progress)
    log.info("training the lung U-Net on %d images (validation %d)", len(data.train_rows), len(data.val_rows))
    try:
        return fit(data.images, data.masks, data.train_rows, data.val_rows, config, out_dir, **arguments)
    except StaleCheckpointError as error:
        log.warning("%s; training from scratch", error)
        (Path(out_dir) / CHECKPOINT_FILE).unlink()
        return fit(data.images, data.masks, data.train_rows, data.val_rows, config, out_dir, **arguments)


def keep_largest(mask: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest 8-connected components of a 2-D binary mask, holes filled."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n > k:
        sizes = np.bincount(labels.ravel())[1:]
        mask = np.isin(labels, np.argsort(sizes)[::-1][:k] + 1)
    return ndimage.binary_fill_holes(mask).astype(MASK_DTYPE)


def predict_masks(model_path: str | Path, images: np.ndarray, settings: dict[str, Any], device: str = "auto",
                  batch_size: int = 256, chunk: int = 2048) -> np.ndarray:
    """The U-Net's lung masks (argmax) of every cache row, uint8 0/1 ``(N, H, W)``; read in
    chunks so that the logits of a large dataset never sit in memory at once."""
    model, meta = load_model(model_path, device="cpu", build=unet_parts(settings).model)
    dev = resolve_device(device)
    model = model.to(dev)
    reader = BatchReader(images, dev)
    masks = np.empty(images.shape, MASK_DTYPE)
    for start in range(0, len(images), chunk):
        rows = np.arange(start, min(start + chunk, len(images)))
        logits = infer_logits(model, reader, rows, Compose([]), batch_size, meta["config"]["seed"])
        masks[rows] = logits.argmax(dim=1).numpy().astype(MASK_DTYPE)
    k = int(settings.get("largest_components", 0))
    if k > 0:
        for row in range(len(masks)):
            masks[row] = keep_largest(masks[row], k)
    return masks
