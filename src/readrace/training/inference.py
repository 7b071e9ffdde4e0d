"""Running a trained network on cache rows: validation during training, prediction after it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from readrace.models import build_model, model_builder
from readrace.training.batches import BatchReader
from readrace.training.device import autocast, prepare_model, resolve_device, to_model_input
from readrace.training.parts import ModelBuilder, MulticlassObjective, Objective
from readrace.training.rng import evaluation_generators
from readrace.transforms.sample import Compose, Transform


def infer_logits(model: nn.Module, reader: BatchReader, rows: np.ndarray, transform: Transform,
                 batch_size: int, seed: int) -> torch.Tensor:
    """Float32 logits ``(len(rows), n_outputs)`` on the CPU, in the order of ``rows``.

    ``transform`` is the eval-time transform, drawing from generators seeded with ``seed``
    afresh at every call (see :func:`readrace.training.rng.evaluation_generators`). Each
    batch is read in sorted row order and put back in the order of ``rows``.
    """
    device = reader.device
    generators = evaluation_generators(seed, transform.streams, device)
    chunks = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    orders = [np.argsort(chunk, kind="stable") for chunk in chunks]
    outputs = []
    model.eval()
    with torch.inference_mode(), autocast(device):
        for batch_rows, x in reader.iterate([chunk[order] for chunk, order in zip(chunks, orders)]):
            x = transform({"image": x, "index": batch_rows}, generators)["image"]
            outputs.append(model(to_model_input(x, device)).float())
    logits = torch.cat(outputs).cpu()
    # Undo the per-batch sort: row j of a sorted batch belongs to position start + order[j].
    positions = torch.from_numpy(np.concatenate([i * batch_size + o for i, o in enumerate(orders)]))
    result = torch.empty_like(logits)
    result[positions] = logits
    return result


def predict(model: nn.Module, images: np.ndarray, rows: Sequence[int] | np.ndarray,
            transform: Transform | None = None, batch_size: int = 256, device: str = "auto",
            seed: int = 0, objective: Objective | None = None) -> np.ndarray:
    """Probabilities ``(len(rows), n_outputs)`` for cache ``rows``, in their order.

    ``transform`` is the eval-time transform the model was trained with (rebuild it from
    ``load_model``'s ``meta["perturbation"]`` with
    :func:`readrace.transforms.sample.perturbation_transform`); identity when None. ``seed``
    seeds its generators, as in training's validation. ``objective`` turns logits into
    probabilities (default multiclass: softmax). The model is moved to ``device`` and left in
    eval mode.
    """
    dev = resolve_device(device)
    model = prepare_model(model, dev)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise ValueError("rows is empty: nothing to predict")
    transform = transform if transform is not None else Compose([])
    objective = objective if objective is not None else MulticlassObjective()
    logits = infer_logits(model, BatchReader(images, dev), rows, transform, batch_size, seed)
    return objective.probabilities(logits).numpy()


def load_model(path: str | os.PathLike, device: str = "cpu",
               build: ModelBuilder | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the best model from ``model.pt``; returns ``(model in eval mode, metadata)``.

    ``build`` is the model builder it was trained with; None: the one model.pt names among
    readrace's own (:func:`readrace.models.model_builder`), else :func:`build_model`. The
    metadata is everything in model.pt but the weights: see :mod:`readrace.training.engine`
    for the keys.
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if build is None:
        named = (saved.get("parts") or {}).get("model")
        build = model_builder(named) if named and named.startswith("readrace.models.") else build_model
    model = build(saved["arch"], saved["n_classes"], None)
    model.load_state_dict(saved["state_dict"])
    model = prepare_model(model, resolve_device(device)).eval()
    meta = {k: v for k, v in saved.items() if k != "state_dict"}
    return model, meta
