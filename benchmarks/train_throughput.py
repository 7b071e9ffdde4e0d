"""Training images per second: readrace's training loop against its compute ceiling and a PNG loader.

Usage:  python benchmarks/train_throughput.py [--arch resnet18] [--size 64] [--batch-size 64]
            [--images 512] [--epochs 3] [--workers 2] [--device auto] [--no-augment]
            [--preload-max-gb 4.0] [--seed 0]

Writes a synthetic cache of ``--images`` training images (smooth random fields in [0, 1],
float16, ``(N, H, W)``, saved as .npy and memory-mapped, as preprocessing writes it; random
labels of 3 classes) plus a tiny validation set, then, in one run and with the same
architecture, image size, batch size, optimiser (AdamW with TrainConfig's lr and weight
decay), loss (cross-entropy) and on-device augmentation (``readrace.transforms.augment.RandomAffine``,
unless ``--no-augment``), times three variants. Every rate is of the training phase only
(loading, forward, backward, optimiser step; no validation), counted over epochs
2..``--epochs``: the first epoch is a warm-up (allocator, cuDNN autotuning, page cache) and
is left out. The variants take turns epoch by epoch (epoch 1 of each, then epoch 2 of
each, ...), so that a load which drifts during the run weighs on all three alike.

1. ``readrace fit``: the real loop, ``readrace.training.engine.fit`` on the memory-mapped cache (the
   subset preloaded to the device when it is below ``--preload-max-gb``, as in production;
   ``--preload-max-gb 0`` makes it read the memmap through ``--workers`` DataLoader workers
   instead). fit is called once per epoch and resumes from its checkpoint each time (as a
   requeued job does; what a resume rebuilds lies outside the timed phase). The rate is
   read from the ``images_per_second`` column of the train_log.csv that fit writes: fit
   times the training phase of each epoch itself and ends the timing with a device sync.
2. ``compute ceiling``: the same model, prepared with ``readrace.training.device``'s
   ``prepare_model`` and fed through its ``autocast`` and ``to_model_input`` (bfloat16 autocast and channels-last on
   CUDA, float32 on CPU), stepping on one random batch already on the device: no data
   loading at all. Timed by this script, with ``torch.cuda.synchronize()`` on CUDA.
3. ``PNG + DataLoader``: the way the paper's code trained. The same images written as 8-bit
   PNG files; a torch DataLoader (``num_workers=--workers``, ``pin_memory`` on CUDA,
   shuffled) whose Dataset opens each PNG with PIL per item and converts it to a float
   tensor; batches are copied to the device and go through the same training step as 2.
   A new iterator per epoch, as ordinary training code does, so worker start-up is counted.

Reading the ratios: ``vs ceiling`` is how much of the model's compute rate a variant
achieves (1.00 = data loading costs nothing); ``vs PNG loader`` is the speed-up over the
paper-style pipeline. readrace's loop should come close to the ceiling. On a CPU the model
itself is the bottleneck, so all three are close (the PNG loader somewhat behind, as its
workers take cores from the model); on a GPU the model is fast enough that per-item PNG
decoding in a few CPU workers cannot keep up, and the PNG loader falls far behind.

Timings are wall-clock on a possibly shared machine: compare rates within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms.functional import pil_to_tensor

from readrace.models import ARCHITECTURES, build_model
from readrace.synthetic.anatomy import smooth_noise
from readrace.training.checkpoint import LOG_FILE, array_digest
from readrace.training.config import TrainConfig
from readrace.training.device import autocast, prepare_model, resolve_device, to_model_input
from readrace.training.engine import fit
from readrace.transforms.augment import RandomAffine
from readrace.transforms.sample import augmentation_transform

N_CLASSES = 3  # the CXR task's classes; only the width of the last layer depends on it


# --------------------------------------------------------------------------------------------
# Data


def make_cache(path: Path, n_images: int, size: int, seed: int) -> np.ndarray:
    """Write ``n_images`` smooth random images in [0, 1] as a float16 .npy; return its memmap.

    Smooth fields with a little pixel noise rather than white noise, so that the PNG files
    compress roughly as radiographs do and PNG decoding is not made artificially slow.
    """
    rng = np.random.default_rng(seed)
    images = np.empty((n_images, size, size), dtype=np.float16)
    for i in range(n_images):
        field = 0.5 + 0.15 * smooth_noise((size, size), rng, scale_px=size / 16)
        field += 0.02 * rng.standard_normal((size, size), dtype=np.float32)
        images[i] = np.clip(field, 0.0, 1.0)
    np.save(path, images)
    return np.load(path, mmap_mode="r")


def write_pngs(images: np.ndarray, rows: np.ndarray, folder: Path) -> list[str]:
    """Write cache rows as 8-bit greyscale PNG files; return their paths in the order of ``rows``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        path = folder / f"{row:07d}.png"
        pixels = np.round(np.asarray(images[row], dtype=np.float32) * 255.0).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(path)
        paths.append(str(path))
    return paths


class PngDataset(torch.utils.data.Dataset):
    """``dataset[i]`` -> ``(image (1, H, W) float32 in [0, 1], label)``, decoding one PNG with PIL."""

    def __init__(self, paths: list[str], labels: np.ndarray) -> None:
        self.paths = paths
        self.labels = labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as image:
            x = pil_to_tensor(image.convert("L")).float().div_(255.0)
        return x, int(self.labels[i])


# --------------------------------------------------------------------------------------------
# The training step of variants 2 and 3


def build(config: TrainConfig, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    """Model and optimiser as ``fit`` builds them (same seed, so the same initial weights)."""
    torch.manual_seed(config.seed)
    model = prepare_model(build_model(config.arch, config.n_classes, config.pretrained), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return model.train(), optimizer


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               augment: RandomAffine | None, generator: torch.Generator,
               device: torch.device) -> torch.Tensor:
    """One step exactly as ``fit``'s inner loop takes it (its GradScaler is disabled, so omitted)."""
    if augment is not None:
        x = augment(x, generator=generator)
    with autocast(device):
        logits = model(to_model_input(x, device))
    loss = F.cross_entropy(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach() * len(y)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steady_rate(rates: list[float]) -> float:
    """Images per second over the epochs after the first (warm-up) one.

    Every epoch of a variant trains on the same number of images, so total images / total
    seconds is the harmonic mean of the per-epoch rates.
    """
    timed = np.asarray(rates[1:], dtype=np.float64)
    return len(timed) / float(np.sum(1.0 / timed))


# --------------------------------------------------------------------------------------------
# The three variants, as generators that train one epoch per next() and yield its images/s,
# so that main() can interleave them: epoch 1 of each, then epoch 2 of each, ... A load that
# drifts during the run (a shared machine) then weighs on the three alike.


def fit_epochs(cache: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
               config: TrainConfig, augment: bool, out_dir: Path) -> Iterator[float]:
    digest = array_digest(cache, np.concatenate([train_idx, val_idx]))
    train_transform = augmentation_transform() if augment else None
    for epoch in range(1, config.epochs + 1):
        # One epoch per call: fit resumes from its checkpoint, as a requeued SLURM job does.
        # What a resume rebuilds (model, optimiser, preloaded cache) lies outside the timed
        # training phase, and process-wide warm state (allocator, cuDNN autotuning) persists.
        fit(cache, labels, train_idx, val_idx, config, out_dir, data_fingerprint=digest,
            train_transform=train_transform, stop_after_epochs=1, progress=False)
        log = pd.read_csv(out_dir / LOG_FILE)
        if log["epoch"].iloc[-1] != epoch:
            raise RuntimeError(f"fit stopped before epoch {epoch}: patience must be >= epochs")
        yield float(log["images_per_second"].iloc[-1])


def ceiling_epochs(config: TrainConfig, augment: bool, n_train: int, size: int,
                   device: torch.device) -> Iterator[float]:
    model, optimizer = build(config, device)
    augment = RandomAffine() if augment else None
    generator = torch.Generator().manual_seed(config.seed)  # on the CPU, as fit's augment stream
    data = torch.Generator(device=device).manual_seed(config.seed)
    x = torch.rand(config.batch_size, 1, size, size, generator=data, device=device)
    y = torch.randint(0, config.n_classes, (config.batch_size,), generator=data, device=device)
    steps = max(1, n_train // config.batch_size)
    for _ in range(config.epochs):
        sync(device)
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for _ in range(steps):
            loss_sum += train_step(model, optimizer, x, y, augment, generator, device)
        loss_sum.item()  # waits for the device
        sync(device)
        yield steps * config.batch_size / (time.perf_counter() - start)


def png_epochs(paths: list[str], labels: np.ndarray, config: TrainConfig, augment: bool,
               device: torch.device) -> Iterator[float]:
    model, optimizer = build(config, device)
    augment = RandomAffine() if augment else None
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(
        PngDataset(paths, labels),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=len(paths) % config.batch_size == 1,  # BatchNorm cannot train on one image
        generator=torch.Generator().manual_seed(config.seed),
    )
    for _ in range(config.epochs):
        sync(device)
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for x, y in loader:  # a new iterator, so new workers, per epoch
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            loss_sum += train_step(model, optimizer, x, y, augment, generator, device)
            seen += len(y)
        loss_sum.item()
        sync(device)
        yield seen / (time.perf_counter() - start)


# --------------------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return "CPU: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU: " + (platform.processor() or platform.machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18", choices=ARCHITECTURES)
    parser.add_argument("--size", type=int, default=64, help="image height and width in pixels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=512, help="training images")
    parser.add_argument("--val-images", type=int, default=32, help="validation images (fit only)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant; the first is a warm-up")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-augment", action="store_true", help="no RandomAffine in any variant")
    parser.add_argument("--preload-max-gb", type=float, default=TrainConfig.preload_max_gb,
                        help="fit's preload threshold (0: fit reads the memmap through its workers)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is a warm-up and is not timed")
    if args.images < args.batch_size:
        parser.error("--images must be at least --batch-size")

    device = resolve_device(args.device)
    config = TrainConfig(
        arch=args.arch, n_classes=N_CLASSES, pretrained=None, epochs=args.epochs,
        batch_size=args.batch_size, patience=args.epochs,  # patience = epochs: never stops early
        seed=args.seed, device=str(device), num_workers=args.workers,
        preload_max_gb=args.preload_max_gb,
    )
    augment = not args.no_augment
    n_total = args.images + args.val_images
    train_idx = np.arange(args.images)
    val_idx = np.arange(args.images, n_total)
    labels = np.random.default_rng(args.seed).integers(0, N_CLASSES, n_total)

    with tempfile.TemporaryDirectory(prefix="readrace-bench-") as tmp:
        tmp = Path(tmp)
        cache = make_cache(tmp / "cache.npy", n_total, args.size, args.seed)
        paths = write_pngs(cache, train_idx, tmp / "png")
        png_kib = sum(os.path.getsize(p) for p in paths) / len(paths) / 1024

        variants = {
            "readrace fit": fit_epochs(cache, labels, train_idx, val_idx, config, augment, tmp / "fit"),
            "compute ceiling": ceiling_epochs(config, augment, args.images, args.size, device),
            "PNG + DataLoader": png_epochs(paths, labels[train_idx], config, augment, device),
        }
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.epochs):
            for name, epochs in variants.items():
                rates[name].append(next(epochs))
        rate = {name: steady_rate(r) for name, r in rates.items()}

    subset_gib = n_total * args.size * args.size * cache.dtype.itemsize / 2**30
    path = "preloaded to the device" if subset_gib <= args.preload_max_gb else f"memmap via {args.workers} workers"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"device {device_name(device)} | torch {torch.__version__} | "
          f"torch threads {torch.get_num_threads()} | {cores} CPU cores usable")
    print(f"{args.arch}, {args.size}x{args.size} px, batch {args.batch_size}, {args.images} training images, "
          f"{args.epochs} epochs (first not timed), augment {'on' if augment else 'off'}, "
          f"{args.workers} workers")
    print(f"fit reads the cache {path} ({subset_gib * 1024:.1f} MiB); PNG files average {png_kib:.1f} KiB")
    print(f"{'variant':<20}{'images/s':>10}{'vs ceiling':>12}{'vs PNG loader':>15}")
    ceiling, png = rate["compute ceiling"], rate["PNG + DataLoader"]
    for name, r in rate.items():
        print(f"{name:<20}{r:>10.1f}{r / ceiling:>11.2f}x{r / png:>14.2f}x")


if __name__ == "__main__":
    main()
