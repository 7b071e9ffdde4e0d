"""The random streams of a training run: how they are seeded, where they live, their state.

Global RNGs (python, numpy, torch) are seeded with the run's seed before the model is built:
weight initialisation and dropout draw from them. Everything else draws from a named
``torch.Generator`` stream of its own (the batch sampler from ``"shuffle"``, each transform
from the streams it declares), so that one part's draws never shift another's and every
stream can be saved in a checkpoint and restored.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import torch

#: Streams seeded from ``np.random.SeedSequence(seed).generate_state(3)``, in this order. The
#: order is part of every result; append new names, never reorder (generate_state(n) is a
#: prefix of generate_state(n + 1), so appending leaves these seeds as they are).
SEEDED_STREAMS: tuple[str, ...] = ("shuffle", "augment", "perturb")

#: Streams whose generator lives on the CPU: the sampler's permutation is a CPU array, and
#: augmentation draws its few parameters per image on the CPU so that it is the same on CPU
#: and GPU. Every other stream (noise the size of the batch, ...) lives on the training device.
CPU_STREAMS: frozenset[str] = frozenset({"shuffle", "augment"})


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs (torch's also seeds every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stream_device(name: str, device: torch.device) -> torch.device:
    """Where the generator of stream ``name`` lives (see :data:`CPU_STREAMS`)."""
    return torch.device("cpu") if name in CPU_STREAMS else device


def stream_seed(seed: int, name: str) -> int:
    """The seed of stream ``name`` in a run seeded with ``seed``.

    A stream outside :data:`SEEDED_STREAMS` is seeded from its name, so that it needs no
    registration and its seed does not depend on which other streams a run has.
    """
    if name in SEEDED_STREAMS:
        return int(np.random.SeedSequence(seed).generate_state(len(SEEDED_STREAMS))[SEEDED_STREAMS.index(name)])
    return int(np.random.SeedSequence(seed, spawn_key=tuple(name.encode())).generate_state(1)[0])


def training_generators(seed: int, names: Iterable[str], device: torch.device) -> dict[str, torch.Generator]:
    """One generator per stream of a training run, each seeded by :func:`stream_seed`."""
    return {name: torch.Generator(device=stream_device(name, device)).manual_seed(stream_seed(seed, name))
            for name in dict.fromkeys(names)}


def evaluation_generators(seed: int, names: Iterable[str], device: torch.device) -> dict[str, torch.Generator]:
    """Fresh generators for one evaluation, every stream seeded with ``seed`` itself.

    Fresh at every evaluation: a random eval transform (noise, ...) is the same at every
    epoch and at test time, and evaluating never advances the training streams.
    """
    return {name: torch.Generator(device=stream_device(name, device)).manual_seed(seed)
            for name in dict.fromkeys(names)}


def rng_states(generators: dict[str, torch.Generator]) -> dict:
    """Every random state of the process, and of ``generators`` under ``"streams"``."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "streams": {name: g.get_state() for name, g in generators.items()},
    }


def set_rng_states(states: dict, generators: dict[str, torch.Generator]) -> None:
    """Restore what :func:`rng_states` saved (CUDA states only onto as many devices)."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    for name, g in generators.items():
        g.set_state(states["streams"][name])
