"""Lung-segmentation throughput: readrace's U-Net training and inference against the same
U-Net on device-resident tensors.

Usage:  python benchmarks/segmentation.py [--size 64] [--images 256] [--epochs 4]
            [--batch-size 16] [--channels 8,16,32,64] [--device auto] [--quick]

Writes a synthetic cache of ``--images`` radiograph-like images with two elliptic "lungs"
each (float16 ``(N, H, W)`` .npy, memory-mapped, as ingestion writes it) and their uint8
masks, then times, in one run:

1. ``readrace train``: :func:`readrace.segmentation.unet.train_unet`, i.e. the engine's
   ``fit`` with the U-Net and its Dice-CE objective (preloading, normalisation,
   checkpoints, validation Dice each epoch). The rate is fit's own ``images_per_second``
   (training phase only), over epochs 2..``--epochs`` (the first is a warm-up).
2. ``plain train``: the same MONAI UNet, DiceCELoss and AdamW stepping over the same
   batches held as tensors on the device: no cache, no transform, no checkpoint, no
   validation. Timed by this script (with a device sync), epochs 2.. likewise.
3. ``readrace predict``: :func:`readrace.segmentation.unet.predict_masks` (model.pt read,
   the cache read in chunks, argmax, the two-largest-components clean-up on the CPU).
4. ``plain predict``: the trained network on the device-resident images, argmax only.

Ratios are readrace / plain: 1.00 means the pipeline costs nothing over the bare network.
Timings are wall-clock on a possibly shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from readrace.experiments.segmentation import DEFAULT_UNET
from readrace.segmentation.unet import SegmentationObjective, predict_masks, train_unet, training_data, unet_parts
from readrace.training.device import normalize, resolve_device


def synthetic_set(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, dx, ry, rx = rng.uniform(0.45, 0.55), rng.uniform(0.18, 0.24), rng.uniform(0.25, 0.32), rng.uniform(0.1, 0.14)
        for side in (-1, 1):
            masks[i] |= (((y - cy) / ry) ** 2 + ((x - 0.5 - side * dx) / rx) ** 2 < 1).astype(np.uint8)
    images = 0.75 - 0.45 * masks + 0.05 * rng.standard_normal(masks.shape)
    return np.clip(images, 0, 1).astype(np.float16), masks


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_training(settings: dict, images: torch.Tensor, masks: torch.Tensor, rows: np.ndarray, epochs: int,
                   seed: int, device: torch.device) -> float:
    """Images per second of the bare loop, epochs 2.. (the first is a warm-up)."""
    torch.manual_seed(seed)
    parts = unet_parts(settings)
    model = parts.model("unet", 2, None).to(device)
    objective = SegmentationObjective()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    generator = torch.Generator().manual_seed(seed)
    seen, seconds = 0, 0.0
    model.train()
    for epoch in range(epochs):
        order = rows[torch.randperm(len(rows), generator=generator).numpy()]
        sync(device)
        start = time.perf_counter()
        for first in range(0, len(order), settings["batch_size"]):
            batch = torch.from_numpy(order[first:first + settings["batch_size"]]).to(device)
            loss = objective.loss(model(normalize(images[batch])), masks[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        if epoch > 0:
            seconds += time.perf_counter() - start
            seen += len(order)
    return seen / seconds


def plain_inference(model: torch.nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> float:
    model.eval()
    with torch.inference_mode():
        model(normalize(images[:batch_size]))  # warm-up
        sync(device)
        start = time.perf_counter()
        for first in range(0, len(images), batch_size):
            model(normalize(images[first:first + batch_size])).argmax(dim=1)
        sync(device)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--channels", default="8,16,32,64")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 32 images of 32 px, 2 epochs")
    args = parser.parse_args()
    if args.quick:
        args.size, args.images, args.epochs = 32, 32, 2
    channels = [int(c) for c in args.channels.split(",")]
    settings = {**DEFAULT_UNET, "channels": channels, "strides": [2] * (len(channels) - 1), "epochs": args.epochs,
                "batch_size": args.batch_size, "patience": args.epochs}
    device = resolve_device(args.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    images, masks = synthetic_set(args.images + args.images // 8, args.size, args.seed)
    n_train = args.images
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "images.npy", images)
        cache = np.load(Path(tmp) / "images.npy", mmap_mode="r")
        split = ["train"] * n_train + ["validation"] * (len(images) - n_train)
        manifest = pd.DataFrame({"split": split, "cache_index": np.arange(len(images))})
        data = training_data([("bench", manifest, cache, masks)])
        execution = {"device": str(device), "preload_max_gb": 4.0}
        result = train_unet(data, settings, args.seed, execution, Path(tmp) / "model", ["bench"], progress=False)
        readrace_train = float(result.log["images_per_second"].iloc[1:].mean()) if args.epochs > 1 else float(
            result.log["images_per_second"].mean())
        on_device = torch.from_numpy(images.astype(np.float32))[:, None].to(device)
        mask_tensor = torch.from_numpy(masks).to(device)
        plain_train = plain_training(settings, on_device, mask_tensor, np.arange(n_train), args.epochs, args.seed, device)

        predict_masks(Path(tmp) / "model/model.pt", cache[:args.batch_size], settings, str(device))  # warm-up
        sync(device)
        start = time.perf_counter()
        predicted = predict_masks(Path(tmp) / "model/model.pt", cache, settings, str(device), batch_size=256)
        sync(device)
        readrace_predict = len(cache) / (time.perf_counter() - start)
        plain_predict = plain_inference(result.model.to(device), on_device, 256, device)
    dice = float(2 * (predicted & masks).sum() / (predicted.sum() + masks.sum()))
    print(f"device {device}, {n_train} training images of {args.size} px, U-Net channels {channels}, "
          f"batch {args.batch_size}, {args.epochs} epochs (rates over epochs 2..), torch threads {torch.get_num_threads()}")
    print(f"{'':18}{'readrace':>12}{'plain':>12}{'ratio':>8}   images/s")
    print(f"{'training':18}{readrace_train:12.1f}{plain_train:12.1f}{readrace_train / plain_train:8.2f}")
    print(f"{'inference':18}{readrace_predict:12.1f}{plain_predict:12.1f}{readrace_predict / plain_predict:8.2f}")
    print(f"(Dice of the trained U-Net on its own images: {dice:.3f})")


if __name__ == "__main__":
    main()
