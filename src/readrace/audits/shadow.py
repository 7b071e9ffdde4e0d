"""Shadow models of a membership audit: training on a balanced half of the patients, and the
scores of every model on every record of the pool under a few views.

The **pool** is the patients of the splits the block names (default: train and validation);
each shadow model trains on the half of them that :class:`readrace.data.subsets.HalfOfPatients`
gives it (every patient IN exactly N/2 models, all of its images together). There is no
model selection: every shadow trains a fixed number of epochs and keeps its last weights
(``fit(select="last")``), so no held-out split decides what a model remembers; the dataset's
test split, which no shadow model ever trains on, is monitored in the training log, is the
reference population of RMIA, and measures utility (race AUC).

Views (:func:`view_transform`): ``identity``, ``flip`` (horizontal) and ``shift-{n}`` /
``shift--{n}`` (n pixels right or left, edge replicated). The score of a record under a model
and a view is the logit margin ``phi = z_y - logsumexp_{j != y} z_j`` (``log p_y - log sum_{j
!= y} p_j``), which is near Gaussian across models and grows with memorisation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from readrace.audits.dp import dp_parts
from readrace.data.subsets import HalfOfPatients, Subset
from readrace.tasks import Task
from readrace.training.batches import BatchReader
from readrace.training.engine import TrainResult
from readrace.training.image_models import train_image_model
from readrace.training.inference import infer_logits, load_model
from readrace.transforms.sample import Compose, ImageTransform

_SHIFT = re.compile(r"^shift-(-?[1-9][0-9]*)$")
POPULATION = "test"


def init_seed(seed: int, n_models: int, shadow: int) -> int:
    """The TrainConfig seed of shadow ``shadow`` (distinct initialisations and shuffles)."""
    return seed * n_models + shadow


def shadow_subset(pool: list[str], n_models: int, shadow: int, seed: int) -> Subset:
    """The training rows of one shadow model: its half of the pool's patients."""
    return Subset.of(tuple(pool), half=HalfOfPatients(n_models, shadow, seed))


def train_shadow(manifest: pd.DataFrame, images: np.ndarray, *, dataset: str, task: Task, arch: str,
                 n_models: int, shadow: int, seed: int, pool: list[str], training: dict[str, Any],
                 dp: dict[str, Any] | None, execution: dict[str, Any], out_dir: str | Path,
                 cache_digest: str, progress: bool = True) -> tuple[TrainResult, dict[str, float]]:
    """Train shadow ``shadow`` of ``n_models`` (fixed epochs, last weights); with ``dp``
    (epsilon, delta, max_grad_norm, expected_batch_size) by DP-SGD, accounted per patient.
    Returns the result and the DP settings (empty without DP)."""
    train = shadow_subset(pool, n_models, shadow, seed)
    training = {**training, "patience": training["epochs"]}  # fixed epochs: no early stop
    parts, settings = None, {}
    if dp is not None:
        rows = task.rows(train.select(manifest))
        parts, settings = dp_parts(rows, len(images), epsilon=dp["epsilon"], delta=dp["delta"],
                                   max_grad_norm=dp["max_grad_norm"], expected_batch_size=dp["expected_batch_size"],
                                   epochs=training["epochs"], seed=init_seed(seed, n_models, shadow),
                                   accountant=dp.get("accountant", "rdp"))
    result = train_image_model(
        manifest, images, dataset=dataset, task=task, arch=arch, perturbation="none",
        seed=init_seed(seed, n_models, shadow), training=training, execution=execution, out_dir=out_dir,
        cache_digest=cache_digest, train=train, validation=Subset.of(POPULATION), progress=progress,
        parts=parts, select="last",
    )
    return result, settings


def _flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.flip(x, dims=(-1,))


class _Shift:
    def __init__(self, pixels: int) -> None:
        self.pixels = pixels
        self.id = f"shift-{pixels}"

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = self.pixels
        if n > 0:
            return torch.cat([x[..., :1].expand(*x.shape[:-1], n), x[..., :-n]], dim=-1)
        return torch.cat([x[..., -n:], x[..., -1:].expand(*x.shape[:-1], -n)], dim=-1)


def view_transform(view: str) -> ImageTransform | Compose:
    """The eval-time transform of a view id (``identity``, ``flip``, ``shift-{n}``)."""
    if view == "identity":
        return Compose([])
    if view == "flip":
        return ImageTransform(_flip, stream="view", id="flip")
    match = _SHIFT.match(view)
    if match:
        return ImageTransform(_Shift(int(match[1])), stream="view", id=view)
    raise ValueError(f"unknown view {view!r}: expected identity, flip or shift-N (N pixels, negative: left)")


def margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``phi = z_y - logsumexp_{j != y} z_j`` per row (stable for any logit scale)."""
    logits = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(logits))
    true = logits[rows, labels]
    others = logits.copy()
    others[rows, labels] = -np.inf
    top = others.max(axis=1, keepdims=True)
    return true - (top[:, 0] + np.log(np.exp(others - top).sum(axis=1)))


def score_records(model_files: list[str], manifest: pd.DataFrame, images: np.ndarray, *, n_models: int,
                  seed: int, pool: list[str], views: list[str], execution: dict[str, Any],
                  batch_size: int = 256) -> pd.DataFrame:
    """Logits and margins of every model on every record of the pool and of the reference
    population (the test split), under every view: one row per (image, model, view), keyed by
    the pseudonymous ``image_id`` and ``patient_id``; ``member`` says whether the record's
    patient was in that model's training half (always False for the population)."""
    tables = []
    device = execution["device"]
    for shadow, path in enumerate(model_files):
        model, meta = load_model(path, device=device)
        task = Task.from_dict(meta["task"])
        rows = task.rows(manifest[manifest["split"].isin([*pool, POPULATION])])
        in_pool = rows["split"].isin(pool).to_numpy()
        member = shadow_subset(pool, n_models, shadow, seed).mask(rows) & in_pool
        index = rows["cache_index"].to_numpy()
        labels = rows["label"].to_numpy().astype(np.int64)
        reader = BatchReader(images, next(model.parameters()).device)
        for view in views:
            logits = infer_logits(model, reader, index, view_transform(view), batch_size, seed).numpy()
            table = pd.DataFrame({
                "image_id": rows["image_id"].to_numpy(), "patient_id": rows["patient_id"].to_numpy(),
                "shadow": shadow, "view": view, "set": np.where(in_pool, "pool", "population"),
                "member": member, "label": labels, "score": margin(logits, labels),
            })
            for k in range(logits.shape[1]):
                table[f"logit_{k}"] = logits[:, k].astype(np.float32)
            tables.append(table)
    return pd.concat(tables, ignore_index=True)
