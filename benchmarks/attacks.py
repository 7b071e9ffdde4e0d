"""Attack throughput: PGD-10 images per second against a plain forward-backward loop.

Usage:  python benchmarks/attacks.py [--arch resnet18] [--size 64] [--batch-size 64]
            [--images 256] [--steps 10] [--device auto] [--repeats 3] [--quick]

A PGD attack of ``--steps`` steps is that many forward-backward passes of the model per
image (plus a random start and the projection), so a plain loop of ``--steps``
forward-backward passes of the same model, on the same batch, with gradients taken with
respect to the input (what an attack needs), is its ceiling. Both run, in turns, on the
model readrace attacks (:class:`readrace.audits.robustness.AttackTarget`: [0, 1] pixels in,
the fixed normalisation inside, eval mode), in float32 (torchattacks does not autocast).
The first round is a warm-up and left out. ``ratio`` is PGD's rate over the ceiling's (1.00:
the attack library costs nothing beyond the model's passes).

Timings are wall-clock on a possibly shared machine: compare the two within one run.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from readrace.audits.robustness import AttackTarget, make_attack
from readrace.models import build_model
from readrace.training.device import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_backward(target: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        inputs = x.clone().requires_grad_(True)
        loss = F.cross_entropy(target(inputs), y)
        torch.autograd.grad(loss, inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script works")
    args = parser.parse_args()
    if args.quick:
        args.size, args.batch_size, args.images, args.steps, args.repeats = 32, 8, 8, 2, 2
    device = resolve_device(args.device)
    torch.manual_seed(0)
    target = AttackTarget(build_model(args.arch, 3, None)).to(device)
    x = torch.rand(args.images, 1, args.size, args.size, device=device)
    y = torch.randint(0, 3, (args.images,), device=device)
    batches = [(x[i:i + args.batch_size], y[i:i + args.batch_size]) for i in range(0, args.images, args.batch_size)]
    attack = make_attack("pgd", target, 4 / 255, args.steps, 2.5)
    variants = {
        "PGD (torchattacks)": lambda xb, yb: attack(xb, yb),
        f"{args.steps} forward-backwards": lambda xb, yb: forward_backward(target, xb, yb, args.steps),
    }
    seconds = {name: [] for name in variants}
    for round_ in range(args.repeats + 1):
        for name, run in variants.items():
            _sync(device)
            start = time.perf_counter()
            for xb, yb in batches:
                run(xb, yb)
            _sync(device)
            if round_:  # round 0 is the warm-up
                seconds[name].append(time.perf_counter() - start)
    print(f"{args.arch} {args.size}px, batch {args.batch_size}, {args.images} images, PGD-{args.steps}, "
          f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'}), "
          f"torch threads {torch.get_num_threads()}")
    rates = {name: args.images / min(values) for name, values in seconds.items()}
    ceiling = rates[f"{args.steps} forward-backwards"]
    for name, rate in rates.items():
        print(f"{name:<28} {rate:10.1f} images/s  ratio {rate / ceiling:5.2f}")


if __name__ == "__main__":
    main()
