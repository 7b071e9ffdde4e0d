"""The replaceable parts of training, each with the default that reproduces the paper's setup.

:func:`readrace.training.engine.fit` runs the loop, the checkpoints and the model selection;
what is trained, on what objective, with which optimiser, in which batches and under which
privacy mechanism comes from a :class:`TrainingParts`:

``model``
    ``build(arch, n_outputs, pretrained) -> nn.Module``; default
    :func:`readrace.models.build_model` (a torchvision backbone for one-channel images).
``objective``
    The loss on logits and targets, how logits become probabilities, and the validation
    score that selects the best epoch; default :class:`MulticlassObjective` (cross-entropy,
    softmax, macro one-vs-rest AUC). :class:`MultilabelObjective` is the multilabel one.
``optimizer``, ``scheduler``
    ``optimizer(model, config)`` and ``scheduler(optimizer, config)``; defaults
    :func:`adamw` and :func:`cosine_per_epoch`. The scheduler is stepped once per epoch.
``sampler``
    ``sampler(config) -> BatchSampler``: the batches of each epoch; default
    :class:`ShuffledBatches`. A Poisson sampler (DP-SGD) or a resampler to equal class
    frequencies plugs in here.
``privacy``
    An optional :class:`PrivacyHook` (DP-SGD); None trains without one.

Every part has an id (``part.id``, else its qualified name) that goes into the fingerprint
of a run, so a checkpoint is never resumed under other parts. Give a part whose behaviour
depends on its arguments an ``id`` that spells them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from readrace.models import build_model
from readrace.training.config import TrainConfig

ModelBuilder = Callable[[str, int, str | None], nn.Module]
OptimizerBuilder = Callable[[nn.Module, TrainConfig], torch.optim.Optimizer]
SchedulerBuilder = Callable[[torch.optim.Optimizer, TrainConfig], torch.optim.lr_scheduler.LRScheduler]


# --------------------------------------------------------------------------------------------
# Objectives


@runtime_checkable
class Objective(Protocol):
    """What the network is trained to predict, and how a prediction is scored."""

    id: str

    def targets(self, labels: np.ndarray, n_outputs: int, rows: np.ndarray) -> np.ndarray:
        """``labels`` (one per cache row) in the dtype :meth:`loss` takes, checked at ``rows``
        (the rows training reads; the others may hold anything)."""
        ...

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch; ``logits`` float32 ``(B, n_outputs)``."""
        ...

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(B, n_outputs)`` from logits."""
        ...

    def score(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        """Validation score for model selection, higher is better (NaN when undefined)."""
        ...


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes present (NaN when none can be scored).

    Every class is scored from its own probability column, whether or not it is ever the
    predicted class. A class absent from ``y_true`` (or the only one present) has no AUC and
    is left out of the mean.
    """
    y_true = np.asarray(y_true)
    return _mean_auc([(y_true == k, probs[:, k]) for k in range(probs.shape[1])])


def mean_label_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean ROC AUC over the columns of a multilabel ``y_true`` ``(N, L)`` that hold both
    values; a NaN label (ignored) is left out of its column."""
    y_true = np.asarray(y_true, dtype=np.float64)
    columns = []
    for k in range(probs.shape[1]):
        known = ~np.isnan(y_true[:, k])
        columns.append((y_true[known, k] > 0.5, probs[known, k]))
    return _mean_auc(columns)


def _mean_auc(columns: list[tuple[np.ndarray, np.ndarray]]) -> float:
    aucs = [roc_auc_score(positive, scores) for positive, scores in columns
            if 0 < positive.sum() < len(positive)]
    return float(np.mean(aucs)) if aucs else float("nan")


class MulticlassObjective:
    """One class per image: cross-entropy, softmax, macro one-vs-rest AUC.

    Labels are integer class codes ``(N,)`` in ``0 .. n_outputs - 1``.
    """

    id = "multiclass"

    def targets(self, labels: np.ndarray, n_outputs: int, rows: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(f"multiclass labels must be (N,) class codes, got shape {labels.shape}")
        labels = labels.astype(np.int64)
        bad = labels[rows][(labels[rows] < 0) | (labels[rows] >= n_outputs)]
        if len(bad):
            raise ValueError(f"labels outside 0..{n_outputs - 1}: {sorted(set(bad.tolist()))[:5]}")
        return labels

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def score(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        return macro_auc(targets, probabilities)


class MultilabelObjective:
    """Any number of labels per image: BCE with logits, sigmoid, mean AUC over labels.

    Labels are 0/1 ``(N, n_outputs)``. With ``ignore_missing``, a NaN label (an uncertain
    finding under the U-Ignore policy) is left out: of the loss (the mean is over the known
    labels of the batch) and of that label's validation AUC.
    """

    def __init__(self, ignore_missing: bool = False) -> None:
        self.ignore_missing = ignore_missing
        # The plain objective keeps its old id, so its runs' fingerprints do not change.
        self.id = "multilabel-ignore-missing" if ignore_missing else "multilabel"

    def targets(self, labels: np.ndarray, n_outputs: int, rows: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.shape[1] != n_outputs:
            raise ValueError(f"multilabel labels must be (N, {n_outputs}), got shape {labels.shape}")
        checked = labels[rows].astype(np.float64)
        allowed = np.isin(checked, (0, 1)) | (np.isnan(checked) if self.ignore_missing else False)
        if not allowed.all():
            raise ValueError("multilabel labels must be 0 or 1" + (" or NaN (ignored)" if self.ignore_missing else ""))
        return labels.astype(np.float32)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.ignore_missing:
            return F.binary_cross_entropy_with_logits(logits, targets)
        known = ~torch.isnan(targets)
        losses = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(targets), reduction="none")
        return (losses * known).sum() / known.sum().clamp(min=1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def score(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        return mean_label_auc(targets, probabilities)


# --------------------------------------------------------------------------------------------
# Batches


@runtime_checkable
class BatchSampler(Protocol):
    """Cuts the training rows into the batches of one epoch, drawing from stream ``stream``."""

    id: str
    stream: str

    def batches(self, rows: np.ndarray, generator: torch.Generator) -> list[np.ndarray]:
        """The batches of one epoch, each an int64 array of cache rows."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """State beyond the generator (which the engine saves), for the checkpoint."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ShuffledBatches:
    """A seeded shuffle of the rows cut into batches of ``batch_size``, each batch sorted
    (so that a memmap is read front to back); a trailing batch of one image is dropped,
    since BatchNorm cannot train on it."""

    stream = "shuffle"

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.id = f"shuffled-batches-{batch_size}"

    def batches(self, rows: np.ndarray, generator: torch.Generator) -> list[np.ndarray]:
        order = torch.randperm(len(rows), generator=generator).numpy()
        shuffled = rows[order]
        batches = [np.sort(shuffled[i:i + self.batch_size]) for i in range(0, len(rows), self.batch_size)]
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches.pop()
        return batches

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def shuffled_batches(config: TrainConfig) -> ShuffledBatches:
    """The default sampler: :class:`ShuffledBatches` of ``config.batch_size``."""
    return ShuffledBatches(config.batch_size)


# --------------------------------------------------------------------------------------------
# Optimisation


def adamw(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW on every parameter, with ``config.lr`` and ``config.weight_decay``."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def cosine_per_epoch(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine annealing over ``config.epochs`` epochs.

    A fixed function of the epoch number, so a resumed run cannot diverge from an
    uninterrupted one through a noisy validation metric.
    """
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)


@runtime_checkable
class PrivacyHook(Protocol):
    """What a differentially private optimiser (DP-SGD, e.g. opacus) needs from the loop.

    Call order: the engine builds model and optimiser and restores them from a checkpoint,
    then calls :meth:`wrap` once and trains with what it returns (saving the state of the
    unwrapped model); :meth:`after_step` follows every optimiser step; :meth:`epsilon` goes
    into the ``epsilon`` column of the log after every epoch; :meth:`state_dict` into every
    checkpoint (and :meth:`load_state_dict` before :meth:`wrap` on resume).
    """

    id: str

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, torch.optim.Optimizer]: ...

    def after_step(self, batch_size: int) -> None: ...

    def epsilon(self) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingParts:
    """The parts :func:`readrace.training.engine.fit` trains with (see the module doc)."""

    model: ModelBuilder = build_model
    objective: Objective = MulticlassObjective()
    optimizer: OptimizerBuilder = adamw
    scheduler: SchedulerBuilder = cosine_per_epoch
    sampler: Callable[[TrainConfig], BatchSampler] = shuffled_batches
    privacy: PrivacyHook | None = None


def part_id(part: object) -> str:
    """``part.id`` when it has one, else its qualified name (a function or class)."""
    if part is None:
        return "none"
    if hasattr(part, "id"):
        return str(part.id)
    name = getattr(part, "__qualname__", None) or type(part).__qualname__
    return f"{getattr(part, '__module__', type(part).__module__)}.{name}"
