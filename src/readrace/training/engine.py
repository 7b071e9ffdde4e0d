"""Train a network on a preprocessed image cache, resumably, and never from a stale state.

One call of :func:`fit` trains one experiment coordinate and writes its output directory.

Files and their lifecycle
-------------------------
``model.pt``
    The weights of the best validation epoch and what they are (see below); read it with
    :func:`readrace.training.inference.load_model`. Rewritten whenever an epoch improves.
``train_log.csv``
    One row per epoch: ``epoch, train_loss, val_loss, val_auc, lr, seconds,
    images_per_second`` (``seconds``: wall time of the epoch, training plus validation;
    ``images_per_second``: training images per second of the training phase), plus
    ``epsilon`` when a privacy hook is used. ``val_auc`` is the objective's validation score.
``checkpoint.pt``
    Everything needed to continue exactly where training stopped: model, optimiser, LR
    scheduler and GradScaler states, the sampler's and privacy hook's states, the epoch
    count, the best validation score and its weights, the early-stopping counter, the log
    rows, every random state (python, numpy, torch CPU and CUDA, every named stream) and the
    run's fingerprint. Written atomically at the end of every epoch, after model.pt and
    train_log.csv: it is the commit point of the epoch.

1. No checkpoint: train from scratch (``TrainResult.origin == "trained"``). model.pt and
   train_log.csv already there (a finished earlier run, a forced rerun) are deleted first,
   so the directory never shows a model of another run.
2. An unfinished checkpoint (a SLURM time limit or preemption killed the job): its
   fingerprint must equal this call's, else
   :class:`~readrace.training.checkpoint.StaleCheckpointError`, and the caller deletes
   it and trains from scratch. A matching one is resumed (``"resumed"``): model.pt
   and train_log.csv are rewritten from it (a kill may have left them an epoch ahead) and
   training ends in the state an uninterrupted run reaches (bit for bit on CPU).
3. When the run finishes (the last epoch, or ``patience`` epochs without improvement),
   model.pt and train_log.csv are written, then the finished checkpoint, then the checkpoint
   is deleted. A later call therefore trains afresh: a finished run is never answered from
   a checkpoint, so ``snakemake --forcerun`` retrains and a changed input cannot meet an old
   model.
4. A finished checkpoint is only found when a job was killed between writing it and
   deleting it. If its fingerprint matches, it restores model.pt and train_log.csv
   (Snakemake deleted them before rerunning the job), is deleted, and nothing is trained
   (``"restored"``).

The fingerprint (:mod:`readrace.training.checkpoint`) digests the caller's
``data_fingerprint`` (the cache content, the task, the subset, the perturbation), the
config fields that change the result, the train and validation rows and their labels, the
task, the transforms and the parts.

model.pt
--------
Plain types only (``torch.load(weights_only=True)`` reads it): ``format``, ``arch``,
``n_classes`` (outputs), ``config`` (the TrainConfig as a dict), ``task`` (the caller's task
dict, or None), ``perturbation`` (the id of the eval-time transform: rebuild it with
:func:`readrace.transforms.sample.perturbation_transform`), ``train_transform`` (its id),
``parts`` (the id of each part), ``fingerprint``, ``data_fingerprint``, ``best_epoch``,
``best_val_auc`` and ``state_dict``.

The loop
--------
Per epoch: the sampler cuts the training rows into batches; each batch is read onto the
device (:mod:`readrace.training.batches`), goes through the train-time transform
(perturbation, then augmentation), the fixed normalisation, the network and the
objective's loss, and one optimiser step; then the scheduler steps, the validation rows go
through the eval-time transform and the network, and the objective's score picks the best
epoch; ``patience`` epochs without improvement end the run. The parts (model, objective,
optimiser, scheduler, sampler, privacy hook) are replaceable: see
:mod:`readrace.training.parts`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from readrace.training.batches import BatchReader
from readrace.training.checkpoint import (
    CHECKPOINT_FILE,
    FORMAT,
    LOG_FILE,
    MODEL_FILE,
    atomic_save,
    check_resumable,
    cpu_state,
    json_digest,
    load_checkpoint,
    model_metadata,
    run_identity,
    save_model,
    write_log,
)
from readrace.training.config import TrainConfig
from readrace.training.device import autocast, prepare_model, resolve_device, to_model_input
from readrace.training.inference import infer_logits
from readrace.training.parts import BatchSampler, Objective, TrainingParts, part_id
from readrace.training.rng import rng_states, seed_everything, set_rng_states, training_generators
from readrace.transforms.sample import Compose, Transform

__all__ = ["LOG_COLUMNS", "EPSILON_COLUMN", "TrainResult", "fit"]

LOG_COLUMNS: tuple[str, ...] = (
    "epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds", "images_per_second",
)
#: The log column a privacy hook adds: the privacy budget spent so far.
EPSILON_COLUMN = "epsilon"

#: Validation batch size (no gradients, so larger than training batches).
EVAL_BATCH_SIZE = 256

Origin = Literal["trained", "resumed", "restored"]


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
    #: "trained": from scratch; "resumed": continued from an unfinished checkpoint;
    #: "restored": a finished checkpoint rewrote the outputs and nothing was trained.
    origin: Origin
    fingerprint: str


@dataclass
class _Progress:
    """What the loop has achieved so far; saved in every checkpoint."""

    epoch: int = 0
    best_val_auc: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    log: list[dict[str, float]] = field(default_factory=list)
    best_model: dict[str, torch.Tensor] | None = None


class _Training:
    """The objects of a run that train and hold state: built as a fresh run builds them,
    saved and restored together, stepped one epoch at a time."""

    def __init__(self, config: TrainConfig, parts: TrainingParts, sampler: BatchSampler,
                 transform: Transform, device: torch.device) -> None:
        # Seeded first: weight initialisation draws from the global RNGs.
        seed_everything(config.seed)
        self.model = prepare_model(parts.model(config.arch, config.n_classes, config.pretrained), device)
        self.optimizer = parts.optimizer(self.model, config)
        self.scheduler = parts.scheduler(self.optimizer, config)
        # bfloat16 keeps float32's exponent range, so no loss scaling: the scaler is a
        # pass-through kept so that float16 autocast needs no change to the loop or the format.
        self.scaler = torch.amp.GradScaler(device.type, enabled=False)
        self.objective = parts.objective
        self.sampler = sampler
        self.privacy = parts.privacy
        self.transform = transform
        self.device = device
        self.generators = training_generators(config.seed, (sampler.stream, *transform.streams), device)
        # What the loop steps: the model and optimiser, or the privacy hook's wrappers of them.
        self.network: nn.Module = self.model
        self.step_optimizer: torch.optim.Optimizer = self.optimizer

    def train_epoch(self, reader: BatchReader, rows: np.ndarray, targets: np.ndarray,
                    progress: str | None = None) -> tuple[float, int]:
        """One pass over the sampler's batches of ``rows``; returns (mean loss, images seen).

        ``progress``: the label of a tqdm bar on stderr; None shows none.
        """
        batches = self.sampler.batches(rows, self.generators[self.sampler.stream])
        device, optimizer = self.device, self.step_optimizer
        self.network.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for batch_rows, x in tqdm(reader.iterate(batches), total=len(batches), file=sys.stderr,
                                  disable=progress is None, leave=False, desc=progress):
            y = torch.from_numpy(targets[batch_rows]).to(device, non_blocking=True)
            x = self.transform({"image": x, "index": batch_rows}, self.generators)["image"]
            with autocast(device):
                logits = self.network(to_model_input(x, device))
            loss = self.objective.loss(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            if self.privacy is not None:
                self.privacy.after_step(len(batch_rows))
            loss_sum += loss.detach() * len(batch_rows)  # stays on the device: no sync per step
            seen += len(batch_rows)
        return loss_sum.item() / seen, seen  # .item() waits for the device: timing is honest

    def wrap(self) -> None:
        """Hand model and optimiser to the privacy hook (after any restore: the hook wraps
        the restored objects)."""
        if self.privacy is not None:
            self.network, self.step_optimizer = self.privacy.wrap(self.model, self.optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "privacy": self.privacy.state_dict() if self.privacy is not None else None,
            "rng": rng_states(self.generators),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        if self.privacy is not None:
            self.privacy.load_state_dict(state["privacy"])
        set_rng_states(state["rng"], self.generators)


def fit(images: np.ndarray, labels: Sequence[int] | np.ndarray,
        train_rows: Sequence[int] | np.ndarray, val_rows: Sequence[int] | np.ndarray,
        config: TrainConfig, out_dir: str | os.PathLike, *, data_fingerprint: str,
        train_transform: Transform | None = None, eval_transform: Transform | None = None,
        parts: TrainingParts | None = None, task: Mapping[str, Any] | None = None,
        stop_after_epochs: int | None = None, progress: bool = True,
        select: Literal["best", "last"] = "best") -> TrainResult:
    """Train on cache ``train_rows``, select the best epoch on ``val_rows``; resumable.

    Parameters
    ----------
    images:
        The cache, ``(N, H, W)`` with values in [0, 1] (float16, usually memory-mapped).
    labels:
        One label per cache row, as the objective takes them (multiclass: integer class
        codes ``(N,)`` in ``readrace.labels`` task order). Only the train and validation
        rows are read and checked.
    train_rows, val_rows:
        Cache rows of the training and validation splits.
    config:
        Hyperparameters; see :class:`TrainConfig`.
    out_dir:
        Where checkpoint.pt, model.pt and train_log.csv go (see the module doc for when).
    data_fingerprint:
        The caller's digest of what the engine cannot see: the content of the cache (e.g.
        :func:`readrace.training.checkpoint.array_digest`), the task, the subset, the
        perturbation. Mixed into the run's fingerprint.
    train_transform, eval_transform:
        Applied to every training batch, and to every validation batch with generators
        seeded afresh from ``config.seed`` (:mod:`readrace.transforms.sample`); identity
        when None. :func:`readrace.transforms.sample.perturb_and_augment` builds the
        paper's pair.
    parts:
        Model builder, objective, optimiser, scheduler, sampler and privacy hook
        (:class:`readrace.training.parts.TrainingParts`; its defaults when None).
    task:
        A JSON-able description of what the model predicts (name, type, classes, ...),
        recorded in model.pt and the fingerprint.
    stop_after_epochs:
        Stop after this many epochs in this call, leaving the checkpoint as a killed job
        would (for testing resumption).
    progress:
        Show a tqdm bar per epoch and a one-line summary per epoch on stderr.
    select:
        ``"best"``: model.pt holds the epoch with the best validation score (model
        selection). ``"last"``: it holds the last epoch's weights and ``val_rows`` are only
        monitored, a fixed-epoch protocol (shadow models of a membership audit, whose
        validation rows must not choose what the model remembers); set ``patience`` to
        ``epochs`` with it, or early stopping still ends the run.
    """
    if select not in ("best", "last"):
        raise ValueError(f"select must be 'best' or 'last', got {select!r}")
    if stop_after_epochs is not None and stop_after_epochs < 1:
        raise ValueError(f"stop_after_epochs must be None or >= 1, got {stop_after_epochs}")
    parts = parts if parts is not None else TrainingParts()
    train_transform = train_transform if train_transform is not None else Compose([])
    eval_transform = eval_transform if eval_transform is not None else Compose([])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_rows = np.asarray(train_rows, dtype=np.int64)
    val_rows = np.asarray(val_rows, dtype=np.int64)
    _check_rows(images, train_rows, val_rows)
    objective = parts.objective
    targets = objective.targets(np.asarray(labels), config.n_classes, np.concatenate([train_rows, val_rows]))
    if len(targets) != len(images):
        raise ValueError(f"labels has {len(targets)} rows for {len(images)} images")
    sampler = parts.sampler(config)
    part_ids = {"model": part_id(parts.model), "objective": part_id(objective),
                "optimizer": part_id(parts.optimizer), "scheduler": part_id(parts.scheduler),
                "sampler": part_id(sampler), "privacy": part_id(parts.privacy)}
    identity = run_identity(
        data_fingerprint=data_fingerprint, config=config, image_shape=images.shape,
        train_rows=train_rows, val_rows=val_rows, targets=targets, task=task,
        transforms={"train": train_transform.id, "eval": eval_transform.id}, parts=part_ids,
    )
    if select != "best":
        # Only when set, so that the fingerprints of best-epoch runs are unchanged.
        identity["select"] = select
    fingerprint = json_digest(identity)
    metadata = model_metadata(config=config, task=task, eval_transform=eval_transform.id,
                              train_transform=train_transform.id, parts=part_ids,
                              fingerprint=fingerprint, data_fingerprint=data_fingerprint)
    log_columns = LOG_COLUMNS + ((EPSILON_COLUMN,) if parts.privacy is not None else ())
    device = resolve_device(config.device)
    checkpoint_path = out_dir / CHECKPOINT_FILE

    def result(run: _Progress, model: nn.Module, finished: bool, origin: Origin) -> TrainResult:
        model.load_state_dict(run.best_model)
        return TrainResult(model=model.eval(), best_epoch=run.best_epoch, best_val_auc=run.best_val_auc,
                           epochs_completed=run.epoch, finished=finished,
                           stopped_early=finished and run.epoch < config.epochs,
                           log=pd.DataFrame(run.log, columns=list(log_columns)), out_dir=out_dir,
                           origin=origin, fingerprint=fingerprint)

    def write_outputs(run: _Progress) -> None:
        save_model(out_dir, run.best_model, metadata, run.best_epoch, run.best_val_auc)
        write_log(out_dir, run.log, log_columns)

    checkpoint = load_checkpoint(checkpoint_path)
    if checkpoint is not None:
        check_resumable(checkpoint, fingerprint, identity, checkpoint_path)
        run = _Progress(**{k: checkpoint[k] for k in vars(_Progress())})
        if checkpoint["finished"]:
            # Killed between committing the finished run and deleting its checkpoint: the
            # checkpoint is the truth, and Snakemake deleted the outputs before the rerun.
            write_outputs(run)
            checkpoint_path.unlink()
            model = prepare_model(parts.model(config.arch, config.n_classes, None), device)
            return result(run, model, finished=True, origin="restored")

    training = _Training(config, parts, sampler, train_transform, device)
    origin: Origin = "trained"
    if checkpoint is not None:
        training.load_state_dict(checkpoint)
        # A kill between writing these and writing the checkpoint may have left them one
        # epoch ahead: the checkpoint is the truth.
        write_outputs(run)
        origin = "resumed"
    else:
        run = _Progress()
        for name in (MODEL_FILE, LOG_FILE):
            (out_dir / name).unlink(missing_ok=True)
    del checkpoint
    training.wrap()

    reader = BatchReader.for_rows(images, device, np.concatenate([train_rows, val_rows]),
                                  config.num_workers, config.preload_max_gb)
    finished = False
    for epochs_this_call, epoch in enumerate(range(run.epoch + 1, config.epochs + 1), start=1):
        start = time.perf_counter()
        lr = training.step_optimizer.param_groups[0]["lr"]
        train_loss, seen = training.train_epoch(reader, train_rows, targets,
                                                f"epoch {epoch}/{config.epochs}" if progress else None)
        train_seconds = time.perf_counter() - start
        training.scheduler.step()
        val_loss, val_auc = _validate(training.model, objective, reader, val_rows, targets[val_rows],
                                      eval_transform, config.seed)

        improved = run.best_epoch == 0 or val_auc > run.best_val_auc or select == "last"
        if improved:
            run.best_val_auc, run.best_epoch, run.bad_epochs = val_auc, epoch, 0
            run.best_model = cpu_state(training.model)
            save_model(out_dir, run.best_model, metadata, epoch, val_auc)
        else:
            run.bad_epochs += 1
        finished = run.bad_epochs >= config.patience or epoch == config.epochs
        seconds = time.perf_counter() - start
        run.epoch = epoch
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc,
               "lr": lr, "seconds": seconds, "images_per_second": seen / train_seconds}
        if training.privacy is not None:
            row[EPSILON_COLUMN] = training.privacy.epsilon()
        run.log.append(row)
        write_log(out_dir, run.log, log_columns)
        # Written last: the commit point of the epoch.
        atomic_save({"format": FORMAT, "fingerprint": fingerprint, "identity": identity,
                     "config": asdict(config), **training.state_dict(), **vars(run),
                     "finished": finished}, checkpoint_path)
        if progress:
            tqdm.write(
                f"epoch {epoch}/{config.epochs} train_loss {train_loss:.4f} val_loss {val_loss:.4f} "
                f"val_auc {val_auc:.4f} lr {lr:.2e} {seconds:.1f}s {seen / train_seconds:.0f} img/s"
                f"{' best' if improved else ''}", file=sys.stderr)
        if finished:
            # The outputs are complete: a later call of this job must train afresh.
            _discard_checkpoint(checkpoint_path)
            break
        if epochs_this_call == stop_after_epochs:
            break

    return result(run, training.model, finished, origin)


def _validate(model: nn.Module, objective: Objective, reader: BatchReader, rows: np.ndarray,
              targets: np.ndarray, transform: Transform, seed: int) -> tuple[float, float]:
    """(loss, score) of ``model`` on ``rows`` under the eval-time transform."""
    logits = infer_logits(model, reader, rows, transform, EVAL_BATCH_SIZE, seed)
    loss = objective.loss(logits, torch.from_numpy(targets)).item()
    return loss, objective.score(targets, objective.probabilities(logits).numpy())


def _discard_checkpoint(path: Path) -> None:
    path.unlink()


def _check_rows(images: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray) -> None:
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    if len(train_rows) < 2 or len(val_rows) < 1:
        raise ValueError("need at least 2 training and 1 validation images")
    for name, rows in (("train_rows", train_rows), ("val_rows", val_rows)):
        if rows.min() < 0 or rows.max() >= len(images):
            raise ValueError(f"{name} has rows outside 0..{len(images) - 1}")
