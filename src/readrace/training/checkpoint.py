"""The files of a training run, and the fingerprint that decides whether a checkpoint may be resumed.

A run writes ``checkpoint.pt`` (the whole state of an unfinished run), ``model.pt`` (the best
weights and what they are) and ``train_log.csv`` (one row per epoch) into its output
directory; :mod:`readrace.training.engine` says when. This module writes and reads them, each
atomically (a temporary file renamed into place), so a kill never leaves half a file.

The fingerprint of a run is a digest of everything that determines its result: the caller's
``data_fingerprint`` (the content of the cache, the task, the subset, the perturbation), the
config fields that change the result, the train and validation rows and their labels, the
task, the transforms and the parts. A checkpoint with another fingerprint is never resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from readrace.training.config import RESULT_FIELDS, TrainConfig

CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
LOG_FILE = "train_log.csv"

#: Version of the checkpoint and model.pt layouts; a checkpoint of another is stale.
FORMAT = 2

#: Bytes of the cache hashed per read by :func:`array_digest`, to bound host memory.
_DIGEST_CHUNK_BYTES = 64 * 2**20


class StaleCheckpointError(ValueError):
    """checkpoint.pt belongs to another run (other data, config, rows, labels, task, transforms
    or parts): it cannot be resumed."""


def array_digest(images: np.ndarray, rows: Sequence[int] | np.ndarray) -> str:
    """SHA-256 of the pixels of cache ``rows`` (with their dtype, image shape and row numbers).

    Reads the rows in sorted order and in chunks of about 64 MiB, so a memory-mapped cache
    is read once, front to back, and never loaded whole. Hashing runs at about 1-2 GB/s.
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    h = hashlib.sha256(json.dumps([np.dtype(images.dtype).str, list(images.shape[1:])]).encode())
    h.update(rows.tobytes())
    image_bytes = max(1, int(np.prod(images.shape[1:])) * np.dtype(images.dtype).itemsize)
    step = max(1, _DIGEST_CHUNK_BYTES // image_bytes)
    for start in range(0, len(rows), step):
        h.update(np.ascontiguousarray(images[rows[start:start + step]]).tobytes())
    return h.hexdigest()


def json_digest(value: Any) -> str:
    """SHA-256 of a JSON-able value, keys sorted (the same value always gives the same digest)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, allow_nan=True).encode()).hexdigest()


def run_identity(*, data_fingerprint: str, config: TrainConfig, image_shape: Sequence[int],
                 train_rows: np.ndarray, val_rows: np.ndarray, targets: np.ndarray,
                 task: Mapping[str, Any] | None, transforms: Mapping[str, str],
                 parts: Mapping[str, str]) -> dict[str, Any]:
    """What determines a run's result, one entry per kind (their digest is the fingerprint;
    kept apart so that a refusal can say what changed)."""
    rows = hashlib.sha256(json.dumps(list(image_shape)).encode())
    labels = hashlib.sha256(targets.dtype.str.encode())
    for idx in (train_rows, val_rows):
        rows.update(np.ascontiguousarray(idx, dtype=np.int64).tobytes())
        labels.update(np.ascontiguousarray(targets[idx]).tobytes())
    return {
        "format": FORMAT,
        "data": data_fingerprint,
        "config": {k: getattr(config, k) for k in RESULT_FIELDS},
        "rows": rows.hexdigest(),
        "labels": labels.hexdigest(),
        "task": json_digest(task),
        "transforms": dict(transforms),
        "parts": dict(parts),
    }


def check_resumable(checkpoint: Mapping[str, Any], fingerprint: str, identity: Mapping[str, Any],
                    path: Path) -> None:
    """Raise :class:`StaleCheckpointError`, naming what changed, unless ``checkpoint`` has ``fingerprint``."""
    if checkpoint.get("fingerprint") == fingerprint:
        return
    saved = checkpoint.get("identity") or {}
    changes = [f"{k}: {saved['config'].get(k)!r} -> {v!r}" for k, v in identity["config"].items()
               if "config" in saved and saved["config"].get(k) != v]
    changes += [f"{k} changed" for k in identity if k != "config" and saved.get(k) != identity[k]]
    raise StaleCheckpointError(f"{path} belongs to another run ({'; '.join(changes)}); "
                               "delete it to train from scratch")


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none."""
    if not path.exists():
        return None
    # mmap: a finished run's weights are read only as far as they are used. weights_only is
    # off because the RNG states hold python and numpy objects (our own file, not user input).
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of the model's state (portable across devices)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def atomic_save(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary file renamed over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def model_metadata(*, config: TrainConfig, task: Mapping[str, Any] | None, eval_transform: str,
                   train_transform: str, parts: Mapping[str, str], fingerprint: str,
                   data_fingerprint: str) -> dict[str, Any]:
    """What model.pt says about its model, besides the weights and the best epoch.

    Plain types only, so that ``torch.load(weights_only=True)`` reads it.
    """
    return {
        "arch": config.arch,
        "n_classes": config.n_classes,
        "config": asdict(config),
        "task": json.loads(json.dumps(task)) if task is not None else None,  # plain types, or a TypeError now
        "perturbation": eval_transform,
        "train_transform": train_transform,
        "parts": dict(parts),
        "fingerprint": fingerprint,
        "data_fingerprint": data_fingerprint,
    }


def save_model(out_dir: Path, state: dict[str, torch.Tensor], metadata: Mapping[str, Any],
               best_epoch: int, best_val_auc: float) -> None:
    """Write model.pt: ``metadata``, the best epoch and its validation score, the weights."""
    atomic_save({"format": FORMAT, **metadata, "best_epoch": best_epoch, "best_val_auc": best_val_auc,
                 "state_dict": state}, out_dir / MODEL_FILE)


def write_log(out_dir: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write train_log.csv: one row per epoch."""
    path = out_dir / LOG_FILE
    tmp = path.with_name(path.name + ".tmp")
    pd.DataFrame(rows, columns=list(columns)).to_csv(tmp, index=False)
    os.replace(tmp, path)
