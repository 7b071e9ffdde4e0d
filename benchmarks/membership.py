"""Shadow models per hour: readrace's membership audit against the compute ceiling of the
same network.

Usage:  python benchmarks/membership.py [--arch small_cnn] [--size 64] [--patients 200]
            [--images-per-patient 1.3] [--epochs 15] [--batch-size 16] [--models 2]
            [--device auto] [--dp-epsilon 0] [--quick]

Builds an in-memory synthetic manifest and cache (smooth random fields, random race labels
of the chest-radiograph classes, about 1.3 images per patient, a 60/10/30 split by patient)
and, in one run, times:

1. ``readrace shadow``: :func:`readrace.audits.shadow.train_shadow` for ``--models`` shadow
   models (balanced halves of the train + validation patients, fixed epochs, last weights;
   with ``--dp-epsilon`` > 0 DP-SGD through opacus), including everything a shadow job does
   in-process: subset selection, the engine's checkpoint every epoch, the monitored test
   split, model.pt (not the Python start-up and imports of a job: printed apart).
2. ``compute ceiling``: the same network, optimiser (AdamW) and loss stepping over the same
   number of images per epoch on one random batch already on the device: no data loading,
   no validation, no checkpoints.

Prints seconds per shadow model and shadow models per hour for both, and their ratio
(``vs ceiling``: 1.00 = the audit's machinery costs nothing beyond the network's compute).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import torch


def synthetic(patients: int, per_patient: float, size: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    from readrace.labels import task_classes

    rng = np.random.default_rng(seed)
    counts = 1 + (rng.random(patients) < per_patient - 1)
    pid = np.repeat([f"{k:016x}" for k in range(patients)], counts)
    n = len(pid)
    split = np.array(["train", "validation", "test"])[np.searchsorted([0.6, 0.7], rng.random(patients))]
    race = rng.choice(task_classes("cxr"), size=patients)
    manifest = pd.DataFrame({
        "patient_id": pid, "study_id": pid, "image_id": [f"{k:016x}" for k in range(n)],
        "split": np.repeat(split, counts), "race": np.repeat(race, counts), "cache_index": np.arange(n),
        "ethnicity": "Not Hispanic or Latino",
    })
    low = rng.random((n, 8, 8)).astype(np.float32)
    images = torch.nn.functional.interpolate(torch.from_numpy(low)[:, None], size=(size, size), mode="bilinear")[:, 0]
    return manifest, images.numpy().astype(np.float16)


def ceiling(arch: str, images_per_epoch: int, epochs: int, batch_size: int, size: int, device: torch.device) -> float:
    from readrace.models import build_model
    from readrace.training.device import autocast, prepare_model, to_model_input

    model = prepare_model(build_model(arch, 3), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, 1, size, size, device=device)
    y = torch.randint(0, 3, (batch_size,), device=device)
    steps = max(1, images_per_epoch // batch_size)
    start = time.perf_counter()
    for _ in range(epochs * steps):
        with autocast(device):
            loss = torch.nn.functional.cross_entropy(model(to_model_input(x, device)).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--images-per-patient", type=float, default=1.3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dp-epsilon", type=float, default=0.0)
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script works")
    args = parser.parse_args()
    if args.quick:
        args.size, args.patients, args.epochs, args.models = 16, 40, 2, 2
    torch.set_num_threads(1) if args.device == "cpu" else None

    from readrace.audits.shadow import train_shadow
    from readrace.tasks import race_task
    from readrace.training.device import resolve_device

    device = resolve_device(args.device)
    manifest, images = synthetic(args.patients, args.images_per_patient, args.size, 0)
    task = race_task("cxr")
    training = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": 1e-3, "weight_decay": 0.0,
                "patience": args.epochs, "augment": False, "pretrained": "none"}
    execution = {"device": str(device), "num_workers": 0, "preload_max_gb": 4.0, "predict_batch_size": 256}
    dp = None if args.dp_epsilon <= 0 else {"epsilon": args.dp_epsilon, "delta": 1e-5, "max_grad_norm": 1.0,
                                            "expected_batch_size": args.batch_size}
    seconds, images_per_epoch = [], []
    for shadow in range(args.models):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result, _ = train_shadow(manifest, images, dataset="bench", task=task, arch=args.arch, n_models=max(2, args.models + args.models % 2),
                                     shadow=shadow, seed=0, pool=["train", "validation"], training=training, dp=dp,
                                     execution=execution, out_dir=out, cache_digest="bench", progress=False)
            seconds.append(time.perf_counter() - start)
        pool = manifest[manifest["split"].isin(["train", "validation"])]
        images_per_epoch.append(len(pool) // 2)
    shadow_s = float(np.mean(seconds))
    ceiling_s = ceiling(args.arch, int(np.mean(images_per_epoch)), args.epochs, args.batch_size, args.size, device)
    startup = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import readrace.audits.shadow; "
                              "print(time.perf_counter() - t)"], capture_output=True, text=True)
    print(f"device {device}, {args.arch} at {args.size} px, {args.epochs} epochs of ~{int(np.mean(images_per_epoch))} images"
          f"{'' if dp is None else f', DP-SGD epsilon {args.dp_epsilon:g}'}")
    print(f"readrace shadow   {shadow_s:8.2f} s/model  {3600 / shadow_s:9.0f} models/hour")
    print(f"compute ceiling   {ceiling_s:8.2f} s/model  {3600 / ceiling_s:9.0f} models/hour")
    print(f"vs ceiling        {ceiling_s / shadow_s:8.2f}")
    print(f"job start-up (imports) {float(startup.stdout.strip() or 'nan'):.2f} s, not in the rates above")


if __name__ == "__main__":
    main()
