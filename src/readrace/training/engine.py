"""Train a race-detection classifier on a preprocessed image cache, resumably.

One call of :func:`fit` trains one experiment coordinate (dataset x architecture x
perturbation x seed) and writes three files to its output directory:

``checkpoint.pt``
    Everything needed to continue exactly where training stopped, rewritten atomically at the
    end of every epoch: model, optimiser, LR scheduler and GradScaler states, the epoch count,
    the best validation score and its weights, the early-stopping counter, the log rows, and
    every random state (python, numpy, torch CPU and CUDA, and the shuffling, augmentation and
    perturbation generators). When a SLURM time limit or a preemption kills the job, the rerun
    calls :func:`fit` with the same arguments and ends in the same state an uninterrupted run
    reaches (bit for bit on CPU).
``model.pt``
    The weights of the best validation epoch with the config and class count; read it with
    :func:`load_model`.
``train_log.csv``
    One row per epoch: ``epoch, train_loss, val_loss, val_auc, lr, seconds,
    images_per_second`` (``seconds``: wall time of the epoch, training plus validation;
    ``images_per_second``: training images per second of the training phase).

Choices, with their reasons:

- AdamW and cross-entropy; a cosine learning-rate schedule over ``epochs``, stepped once per
  epoch. Cosine is a fixed function of the epoch number, so a resumed run cannot diverge
  from an uninterrupted one through a noisy validation metric; early stopping on the
  validation macro AUC (``patience`` epochs without improvement) ends runs that plateau.
- Per-image input pipeline: pixels in [0, 1] from the cache, then the perturbation (train
  and validation alike, as at test time), then augmentation (training only), then a fixed
  normalisation ``(x - 0.5) / 0.25``. Fixed rather than dataset statistics so that a model
  sees identically scaled inputs on every external test set and no statistic is computed
  from data; the values are near ImageNet's grey-level mean and spread (about 0.45 and
  0.23), which suits the pretrained first convolution.
- GPU: bfloat16 autocast (no loss scaling needed, so the GradScaler is present but
  disabled), channels-last memory format, cuDNN autotuning, pinned host memory with
  asynchronous copies, and the whole train + validation subset moved to GPU memory when it
  is smaller than ``preload_max_gb``. CPU: float32 throughout; the kernels used are
  deterministic for a given thread count.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm import tqdm

from readrace.transforms.augment import RandomAffine
from readrace.models import ARCHITECTURES, build_model

#: Fixed input normalisation, applied after perturbation and augmentation (see module doc).
NORM_MEAN = 0.5
NORM_STD = 0.25

CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
LOG_FILE = "train_log.csv"
LOG_COLUMNS: tuple[str, ...] = (
    "epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds", "images_per_second",
)

#: Config fields that change what training computes. A checkpoint written under other values
#: is refused rather than silently continued. (device, num_workers and preload_max_gb only
#: change where and how fast.)
RESUME_FIELDS: tuple[str, ...] = (
    "arch", "n_classes", "pretrained", "epochs", "batch_size", "lr", "weight_decay",
    "patience", "seed", "augment",
)

#: Rows read from the cache per copy when preloading, to bound host memory.
_PRELOAD_CHUNK = 4096
#: Validation batch size (no gradients, so larger than training batches).
_EVAL_BATCH_SIZE = 256

Perturbation = Callable[..., torch.Tensor]


class StaleCheckpointError(ValueError):
    """checkpoint.pt belongs to another config or other splits: it cannot be resumed."""


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (every one of them is recorded in model.pt)."""

    arch: str = "resnet18"
    n_classes: int = 3
    pretrained: str | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3  # epochs without a better validation macro AUC before stopping
    seed: int = 0
    device: str = "auto"  # "auto": cuda if available, else cpu
    augment: bool = True
    num_workers: int = 0  # DataLoader workers reading the cache; 0 reads in the main process
    preload_max_gb: float = 4.0  # GiB: move the whole train + validation subset to the device below this

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHITECTURES)}")
        for name in ("n_classes", "batch_size"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2, got {getattr(self, name)}")
        for name in ("epochs", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_workers < 0 or self.preload_max_gb < 0:
            raise ValueError("num_workers and preload_max_gb must be >= 0")


@dataclass
class TrainResult:
    """What :func:`fit` returns. ``model`` holds the best-validation weights, in eval mode."""

    model: nn.Module = field(repr=False)
    best_epoch: int  # 1-based epoch whose weights are in model.pt
    best_val_auc: float
    epochs_completed: int
    finished: bool  # False only when stop_after_epochs interrupted the run
    stopped_early: bool  # True when patience ran out before the last epoch
    log: pd.DataFrame = field(repr=False)
    out_dir: Path


# --------------------------------------------------------------------------------------------
# Small public helpers


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """The fixed input normalisation ``(x - NORM_MEAN) / NORM_STD``."""
    return (x - NORM_MEAN) / NORM_STD


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes present (NaN when none can be scored).

    Every class is scored from its own probability column, whether or not it is ever the
    predicted class. A class absent from ``y_true`` (or the only one present) has no AUC and
    is left out of the mean.
    """
    y_true = np.asarray(y_true)
    aucs = []
    for k in range(probs.shape[1]):
        positive = y_true == k
        if 0 < positive.sum() < len(y_true):
            aucs.append(roc_auc_score(positive, probs[:, k]))
    return float(np.mean(aucs)) if aucs else float("nan")


# --------------------------------------------------------------------------------------------
# Reading batches from the cache


def _read_rows(images: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """Rows of the cache (``rows`` sorted, so a memmap is read front to back) as a tensor."""
    return torch.from_numpy(np.ascontiguousarray(images[rows]))


class _RowsDataset(torch.utils.data.Dataset):
    """``dataset[rows]`` -> the images of those cache rows; used with a sampler of batches.

    Pickles an on-disk memmap as its file name and layout, so DataLoader workers started by
    spawn or forkserver reopen the file instead of receiving a copy of the whole cache.
    """

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        return _read_rows(self.images, rows)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        img = self.images
        # Only a memmap that maps its file directly (not a view into one) can be reopened
        # from (filename, offset, shape).
        if isinstance(img, np.memmap) and isinstance(img.base, mmap.mmap) and img.filename:
            order = "F" if img.flags.f_contiguous and not img.flags.c_contiguous else "C"
            state["images"] = ("memmap", img.filename, img.dtype.str, img.shape, img.offset, order)
        return state

    def __setstate__(self, state: dict) -> None:
        img = state["images"]
        if isinstance(img, tuple) and img[0] == "memmap":
            _, filename, dtype, shape, offset, order = img
            state["images"] = np.memmap(filename, dtype=dtype, mode="r", shape=shape, offset=offset, order=order)
        self.__dict__.update(state)


class _BatchReader:
    """Turns lists of sorted cache rows into float32 ``(B, 1, H, W)`` batches on the device.

    Three paths, fastest first: rows preloaded into device memory (indexed there); a
    DataLoader whose workers read the cache ahead of the device; direct reads in this process.
    """

    def __init__(self, images: np.ndarray, device: torch.device, num_workers: int = 0,
                 preload_rows: np.ndarray | None = None) -> None:
        self.images = images
        self.device = device
        self.num_workers = num_workers
        self.pin = device.type == "cuda"
        self.preloaded: torch.Tensor | None = None
        self.preloaded_rows: np.ndarray | None = None
        if preload_rows is not None:
            self._preload(np.unique(preload_rows))

    def _preload(self, rows: np.ndarray) -> None:
        dtype = torch.from_numpy(np.zeros(0, dtype=self.images.dtype)).dtype
        data = torch.empty((len(rows),) + tuple(self.images.shape[1:]), dtype=dtype, device=self.device)
        for start in range(0, len(rows), _PRELOAD_CHUNK):
            chunk = _read_rows(self.images, rows[start:start + _PRELOAD_CHUNK])
            data[start:start + len(chunk)] = chunk.to(self.device)
        self.preloaded, self.preloaded_rows = data, rows

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        if self.pin and not x.is_pinned():
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True).float().unsqueeze(1)

    def iterate(self, batches: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Yield ``(rows, images)`` for each batch of rows, in order."""
        if self.preloaded is not None:
            for rows in batches:
                pos = torch.from_numpy(np.searchsorted(self.preloaded_rows, rows)).to(self.device)
                yield rows, self.preloaded[pos].float().unsqueeze(1)
        elif self.num_workers > 0:
            loader = torch.utils.data.DataLoader(
                _RowsDataset(self.images),
                sampler=list(batches),
                batch_size=None,  # each sampler item is already a whole batch of rows
                num_workers=self.num_workers,
                pin_memory=self.pin,
                # A private generator keeps the DataLoader from drawing on torch's global RNG.
                generator=torch.Generator().manual_seed(0),
            )
            # The loader first: it runs to exhaustion, so its workers shut down cleanly.
            for x, rows in zip(loader, batches):
                yield rows, self._to_device(x)
        else:
            for rows in batches:
                yield rows, self._to_device(_read_rows(self.images, rows))


def _epoch_batches(idx: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """Shuffle ``idx`` and cut it into batches of sorted rows (sorted: memmap reads in order)."""
    order = torch.randperm(len(idx), generator=generator).numpy()
    shuffled = idx[order]
    batches = [np.sort(shuffled[i:i + batch_size]) for i in range(0, len(idx), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()  # BatchNorm cannot train on a single image
    return batches


def _infer_logits(model: nn.Module, reader: _BatchReader, idx: np.ndarray,
                  perturbation: Perturbation | None, batch_size: int, seed: int) -> torch.Tensor:
    """Float32 logits ``(len(idx), n_classes)`` on the CPU, in the order of ``idx``."""
    device = reader.device
    # Its own seeded generator: a random perturbation (noise, ...) is the same at every
    # evaluation, and evaluating never advances the training streams.
    generator = torch.Generator(device=device).manual_seed(seed)
    chunks = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    orders = [np.argsort(chunk, kind="stable") for chunk in chunks]
    outputs = []
    model.eval()
    with torch.inference_mode(), _autocast(device):
        for _, x in reader.iterate([chunk[order] for chunk, order in zip(chunks, orders)]):
            if perturbation is not None:
                x = perturbation(x, generator=generator)
            outputs.append(model(_to_model_input(x, device)).float())
    logits = torch.cat(outputs).cpu()
    # Undo the per-batch sort: row j of a sorted batch belongs to position start + order[j].
    positions = torch.from_numpy(np.concatenate([i * batch_size + o for i, o in enumerate(orders)]))
    result = torch.empty_like(logits)
    result[positions] = logits
    return result


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _to_model_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = normalize(x)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    return model


# --------------------------------------------------------------------------------------------
# Public API


def predict(model: nn.Module, images: np.ndarray, idx: Sequence[int] | np.ndarray,
            perturbation: Perturbation | None = None, batch_size: int = 256,
            device: str = "auto", seed: int = 0) -> np.ndarray:
    """Class probabilities ``(len(idx), n_classes)`` (softmax) for cache rows ``idx``, in order.

    ``perturbation`` (a ``readrace.transforms.perturbations`` callable) is applied to the [0, 1] pixels
    before normalisation, as in training; ``seed`` seeds the generator it receives. The model
    is moved to ``device`` and left in eval mode.
    """
    dev = resolve_device(device)
    model = _prepare_model(model, dev)
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0:
        raise ValueError("idx is empty: nothing to predict")
    reader = _BatchReader(images, dev)
    logits = _infer_logits(model, reader, idx, perturbation, batch_size, seed)
    return torch.softmax(logits, dim=1).numpy()


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the best model from ``model.pt``; returns ``(model in eval mode, metadata)``.

    The metadata holds ``arch``, ``n_classes``, ``config`` (the TrainConfig as a dict),
    ``best_epoch`` and ``best_val_auc``.
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(saved["arch"], saved["n_classes"], pretrained=None)
    model.load_state_dict(saved["state_dict"])
    model = _prepare_model(model, resolve_device(device)).eval()
    meta = {k: v for k, v in saved.items() if k != "state_dict"}
    return model, meta


def fit(images: np.ndarray, labels: Sequence[int] | np.ndarray,
        train_idx: Sequence[int] | np.ndarray, val_idx: Sequence[int] | np.ndarray,
        config: TrainConfig, out_dir: str | os.PathLike,
        perturbation: Perturbation | None = None, stop_after_epochs: int | None = None,
        progress: bool = True) -> TrainResult:
    """Train ``config.arch`` on cache rows ``train_idx``, select on ``val_idx``; resumable.

    Parameters
    ----------
    images:
        The cache, ``(N, H, W)`` with values in [0, 1] (float16, usually memory-mapped).
    labels:
        Integer class per cache row, ``(N,)``, in ``readrace.labels`` task order.
    train_idx, val_idx:
        Cache rows of the training and validation splits.
    config:
        Hyperparameters; see :class:`TrainConfig`.
    out_dir:
        Where checkpoint.pt, model.pt and train_log.csv go. When checkpoint.pt is there,
        training resumes from it; when that run had finished, fit returns at once.
    perturbation:
        ``callable(x, generator=None)`` on ``(B, 1, H, W)`` [0, 1] batches, applied to
        training and validation images before augmentation; identity when None.
    stop_after_epochs:
        Stop after this many epochs in this call, leaving the checkpoint as a killed job
        would (for testing resumption).
    progress:
        Show a tqdm bar per epoch and a one-line summary per epoch on stderr.

    Seeds python's, numpy's and torch's global RNGs with ``config.seed`` (weight
    initialisation and dropout draw from them); shuffling, augmentation and the perturbation
    use generators of their own, derived from the same seed.
    """
    if stop_after_epochs is not None and stop_after_epochs < 1:
        raise ValueError(f"stop_after_epochs must be None or >= 1, got {stop_after_epochs}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, dtype=np.int64)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    val_idx = np.asarray(val_idx, dtype=np.int64)
    _check_inputs(images, labels, train_idx, val_idx, config.n_classes)
    fingerprint = _fingerprint(images, labels, train_idx, val_idx)
    device = resolve_device(config.device)

    checkpoint = None
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if checkpoint_path.exists():
        # mmap: a finished run answers without reading its weights into memory.
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False, mmap=True)
        _check_resumable(checkpoint, config, fingerprint, checkpoint_path)
        if checkpoint["finished"]:
            # Snakemake deletes a job's outputs before it runs the job again (a forced rerun,
            # a retry after a kill between the last checkpoint and model.pt): restore them.
            if not (out_dir / MODEL_FILE).exists():
                _save_model(out_dir, checkpoint["best_model"], config, checkpoint["best_epoch"],
                            checkpoint["best_val_auc"])
            if not (out_dir / LOG_FILE).exists():
                _write_log(out_dir, checkpoint["log"])
            return _result(checkpoint, config, device, out_dir)

    # Build everything as a fresh run would, then overwrite it with the checkpoint's state.
    _seed_everything(config.seed)
    model = _prepare_model(build_model(config.arch, config.n_classes, config.pretrained), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    # bfloat16 keeps float32's exponent range, so no loss scaling: the scaler is a pass-through
    # kept so that float16 autocast needs no change to the loop or the checkpoint format.
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    shuffle_seed, augment_seed, perturb_seed = np.random.SeedSequence(config.seed).generate_state(3)
    generators = {
        "shuffle": torch.Generator().manual_seed(int(shuffle_seed)),
        "augment": torch.Generator().manual_seed(int(augment_seed)),
        # On the device: a perturbation may draw its noise where the batch lives.
        "perturb": torch.Generator(device=device).manual_seed(int(perturb_seed)),
    }
    run = {"epoch": 0, "best_val_auc": -math.inf, "best_epoch": 0, "bad_epochs": 0,
           "log": [], "best_model": None}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        _set_rng_states(checkpoint["rng"], generators)
        run = {k: checkpoint[k] for k in run}
        # A kill between writing these and writing the checkpoint may have left them one
        # epoch ahead: the checkpoint is the truth.
        _save_model(out_dir, run["best_model"], config, run["best_epoch"], run["best_val_auc"])
        _write_log(out_dir, run["log"])

    preload_rows = np.concatenate([train_idx, val_idx])
    image_bytes = int(np.prod(images.shape[1:])) * np.dtype(images.dtype).itemsize
    fits = len(np.unique(preload_rows)) * image_bytes <= config.preload_max_gb * 2**30
    reader = _BatchReader(images, device, config.num_workers, preload_rows if fits else None)
    augment = RandomAffine() if config.augment else None
    y_val = labels[val_idx]

    finished = False
    for epochs_this_call, epoch in enumerate(range(run["epoch"] + 1, config.epochs + 1), start=1):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        batches = _epoch_batches(train_idx, config.batch_size, generators["shuffle"])
        model.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        bar = tqdm(reader.iterate(batches), total=len(batches), desc=f"epoch {epoch}/{config.epochs}",
                   file=sys.stderr, disable=not progress, leave=False)
        for rows, x in bar:
            y = torch.from_numpy(labels[rows]).to(device, non_blocking=True)
            if perturbation is not None:
                x = perturbation(x, generator=generators["perturb"])
            if augment is not None:
                x = augment(x, generator=generators["augment"])
            with _autocast(device):
                logits = model(_to_model_input(x, device))
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach() * len(rows)  # stays on the device: no sync per step
            seen += len(rows)
        train_loss = loss_sum.item() / seen  # .item() waits for the device: timing is honest
        train_seconds = time.perf_counter() - start
        scheduler.step()

        val_logits = _infer_logits(model, reader, val_idx, perturbation, _EVAL_BATCH_SIZE, config.seed)
        val_loss = F.cross_entropy(val_logits, torch.from_numpy(y_val)).item()
        val_auc = macro_auc(y_val, torch.softmax(val_logits, dim=1).numpy())

        improved = run["best_epoch"] == 0 or val_auc > run["best_val_auc"]
        if improved:
            run.update(best_val_auc=val_auc, best_epoch=epoch, bad_epochs=0,
                       best_model=_cpu_state(model))
            _save_model(out_dir, run["best_model"], config, epoch, val_auc)
        else:
            run["bad_epochs"] += 1
        finished = run["bad_epochs"] >= config.patience or epoch == config.epochs
        seconds = time.perf_counter() - start
        run["epoch"] = epoch
        run["log"].append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                           "val_auc": val_auc, "lr": lr, "seconds": seconds,
                           "images_per_second": seen / train_seconds})
        _write_log(out_dir, run["log"])
        # Written last: the commit point of the epoch.
        _save_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler, generators, run,
                         finished, config, fingerprint)
        if progress:
            tqdm.write(
                f"epoch {epoch}/{config.epochs} train_loss {train_loss:.4f} val_loss {val_loss:.4f} "
                f"val_auc {val_auc:.4f} lr {lr:.2e} {seconds:.1f}s {seen / train_seconds:.0f} img/s"
                f"{' best' if improved else ''}", file=sys.stderr)
        if finished or epochs_this_call == stop_after_epochs:
            break

    model.load_state_dict(run["best_model"])
    return TrainResult(model=model.eval(), best_epoch=run["best_epoch"],
                       best_val_auc=run["best_val_auc"], epochs_completed=run["epoch"],
                       finished=finished,
                       stopped_early=finished and run["epoch"] < config.epochs,
                       log=pd.DataFrame(run["log"], columns=list(LOG_COLUMNS)), out_dir=out_dir)


# --------------------------------------------------------------------------------------------
# Checkpointing and bookkeeping


def _check_inputs(images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray,
                  val_idx: np.ndarray, n_classes: int) -> None:
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"labels has {len(labels)} rows for {len(images)} images")
    if len(train_idx) < 2 or len(val_idx) < 1:
        raise ValueError("need at least 2 training and 1 validation images")
    for name, idx in (("train_idx", train_idx), ("val_idx", val_idx)):
        if idx.min() < 0 or idx.max() >= len(images):
            raise ValueError(f"{name} has rows outside 0..{len(images) - 1}")
        bad = labels[idx][(labels[idx] < 0) | (labels[idx] >= n_classes)]
        if len(bad):
            raise ValueError(f"{name} has labels outside 0..{n_classes - 1}: {sorted(set(bad.tolist()))[:5]}")


def _fingerprint(images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray,
                 val_idx: np.ndarray) -> str:
    """Hash of the splits and their labels (not the pixels), to refuse resuming on other data."""
    h = hashlib.sha256(repr(tuple(images.shape)).encode())
    for array in (train_idx, val_idx, labels[train_idx], labels[val_idx]):
        h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return h.hexdigest()


def _check_resumable(checkpoint: dict, config: TrainConfig, fingerprint: str, path: Path) -> None:
    saved = checkpoint["config"]
    changed = [f"{k}: {saved.get(k)!r} -> {getattr(config, k)!r}"
               for k in RESUME_FIELDS if saved.get(k) != getattr(config, k)]
    if changed:
        raise StaleCheckpointError(f"{path} was written with another config ({'; '.join(changed)}); "
                         f"delete it to train from scratch")
    if checkpoint["fingerprint"] != fingerprint:
        raise StaleCheckpointError(f"{path} was written for other splits or labels; delete it to train from scratch")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _rng_states(generators: dict[str, torch.Generator]) -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        **{name: g.get_state() for name, g in generators.items()},
    }


def _set_rng_states(states: dict, generators: dict[str, torch.Generator]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    for name, g in generators.items():
        g.set_state(states[name])


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of the model's state (portable across devices)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                     generators: dict[str, torch.Generator], run: dict, finished: bool,
                     config: TrainConfig, fingerprint: str) -> None:
    _atomic_save({
        "format": 1,
        "config": asdict(config),
        "fingerprint": fingerprint,
        "model": _cpu_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": _rng_states(generators),
        "finished": finished,
        **run,
    }, path)


def _save_model(out_dir: Path, state: dict[str, torch.Tensor], config: TrainConfig,
                best_epoch: int, best_val_auc: float) -> None:
    _atomic_save({
        "format": 1,
        "arch": config.arch,
        "n_classes": config.n_classes,
        "config": asdict(config),
        "best_epoch": best_epoch,
        "best_val_auc": best_val_auc,
        "state_dict": state,
    }, out_dir / MODEL_FILE)


def _write_log(out_dir: Path, rows: list[dict]) -> None:
    path = out_dir / LOG_FILE
    tmp = path.with_name(path.name + ".tmp")
    pd.DataFrame(rows, columns=list(LOG_COLUMNS)).to_csv(tmp, index=False)
    os.replace(tmp, path)


def _result(checkpoint: dict, config: TrainConfig, device: torch.device, out_dir: Path) -> TrainResult:
    """The result of a run that had already finished, read back without training."""
    model = build_model(config.arch, config.n_classes, pretrained=None)
    model.load_state_dict(checkpoint["best_model"])
    model = _prepare_model(model, device).eval()
    return TrainResult(model=model, best_epoch=checkpoint["best_epoch"],
                       best_val_auc=checkpoint["best_val_auc"], epochs_completed=checkpoint["epoch"],
                       finished=True, stopped_early=checkpoint["epoch"] < config.epochs,
                       log=pd.DataFrame(checkpoint["log"], columns=list(LOG_COLUMNS)), out_dir=out_dir)
