"""The hyperparameters of one training run."""

from __future__ import annotations

from dataclasses import dataclass

from readrace.models import ARCHITECTURES, SEGMENTATION_ARCHITECTURES

#: TrainConfig fields that change what training computes; they go into the fingerprint of a
#: run. (device, num_workers and preload_max_gb only change where and how fast.)
RESULT_FIELDS: tuple[str, ...] = (
    "arch", "n_classes", "pretrained", "epochs", "batch_size", "lr", "weight_decay",
    "patience", "seed",
)


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (every one of them is recorded in model.pt).

    Augmentation is not a field: it is part of the train-time transform that
    :func:`readrace.training.engine.fit` receives (see
    :func:`readrace.transforms.sample.perturb_and_augment`).
    """

    arch: str = "resnet18"
    n_classes: int = 3  # outputs of the network: classes (multiclass) or labels (multilabel)
    pretrained: str | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3  # epochs without a better validation score before stopping
    seed: int = 0
    device: str = "auto"  # "auto": cuda if available, else cpu
    num_workers: int = 0  # DataLoader workers reading the cache; 0 reads in the main process
    preload_max_gb: float = 4.0  # GiB: move the whole train + validation subset to the device below this

    def __post_init__(self) -> None:
        known = ARCHITECTURES + SEGMENTATION_ARCHITECTURES
        if self.arch not in known:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {', '.join(known)}")
        for name in ("n_classes", "batch_size"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2, got {getattr(self, name)}")
        for name in ("epochs", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_workers < 0 or self.preload_max_gb < 0:
            raise ValueError("num_workers and preload_max_gb must be >= 0")
