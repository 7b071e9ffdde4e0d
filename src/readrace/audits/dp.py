"""DP-SGD with opacus, accounted per patient: the training engine's sampler and privacy hook.

Privacy is per **patient**, the unit a membership audit asks about: neighbouring datasets
differ by one patient with all of its images. :class:`PatientPoissonBatches` draws every
step's batch by Poisson sampling of patients (each independently with probability ``q``)
and takes **one image of each sampled patient** (uniformly among its images), so a patient
contributes at most one clipped per-sample gradient to any step. opacus' accountant then
bounds the privacy loss of a patient exactly as it bounds that of a record under Poisson
sampling, with ``q`` the patient sampling rate. An epoch is ``round(1 / q)`` steps (one
expected pass over the patients, not the images).

A step whose Poisson draw is empty (probability ``(1 - q) ** patients``, below 1e-6 for the
batch sizes used here) is skipped rather than padded; the accountant counts only the steps
taken, each of which samples independently.

:class:`OpacusPrivacy` is the engine's :class:`readrace.training.parts.PrivacyHook`: it wraps
the network in opacus' GradSampleModule (per-sample gradients) and the optimiser in a
DPOptimizer (clip to ``max_grad_norm``, add Gaussian noise of ``noise_multiplier x
max_grad_norm``, divide by the expected batch size), and accounts every step with opacus'
RDP (or PRV) accountant. The noise multiplier for a target epsilon comes from
:func:`noise_for_epsilon`. BatchNorm is replaced by GroupNorm in the network itself
(:func:`readrace.models.build_group_norm_model`, opacus' ModuleValidator.fix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from readrace.models import build_group_norm_model
from readrace.training.config import TrainConfig
from readrace.training.parts import TrainingParts


class PatientPoissonBatches:
    """Poisson sampling of patients, one image per sampled patient per step.

    ``patient_of_row``: one integer patient code per cache row (rows outside training may
    hold anything; only the training rows passed to :meth:`batches` are read).
    """

    stream = "poisson"

    def __init__(self, patient_of_row: np.ndarray, sample_rate: float) -> None:
        if not 0 < sample_rate <= 1:
            raise ValueError(f"the patient sampling rate must be in (0, 1], got {sample_rate}")
        self.patient_of_row = np.asarray(patient_of_row, dtype=np.int64)
        self.sample_rate = float(sample_rate)
        self.steps = max(1, round(1 / self.sample_rate))
        self.id = f"patient-poisson-q{self.sample_rate:.6g}-steps{self.steps}"

    def batches(self, rows: np.ndarray, generator: torch.Generator) -> list[np.ndarray]:
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        patients, first, counts = np.unique(self.patient_of_row[rows], return_index=True, return_counts=True)
        order = np.argsort(self.patient_of_row[rows], kind="stable")  # rows grouped by patient
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out = []
        for _ in range(self.steps):
            chosen = torch.rand(len(patients), generator=generator).numpy() < self.sample_rate
            pick = torch.rand(len(patients), generator=generator).numpy()
            offset = np.minimum((pick * counts).astype(np.int64), counts - 1)
            batch = rows[order[starts + offset]][chosen]
            if len(batch):
                out.append(np.sort(batch))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass(frozen=True)
class PatientSampler:
    """The sampler factory of :class:`TrainingParts` (its id spells the rate)."""

    patient_of_row: Any  # np.ndarray; Any keeps the dataclass hashable-free and simple
    sample_rate: float

    @property
    def id(self) -> str:
        return PatientPoissonBatches(np.zeros(1), self.sample_rate).id

    def __call__(self, config: TrainConfig) -> PatientPoissonBatches:
        return PatientPoissonBatches(self.patient_of_row, self.sample_rate)


def noise_for_epsilon(epsilon: float, delta: float, sample_rate: float, steps: int,
                      accountant: str = "rdp") -> float:
    """The smallest noise multiplier whose ``steps`` steps at ``sample_rate`` spend at most
    ``(epsilon, delta)`` (opacus' get_noise_multiplier)."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant=accountant))


class OpacusPrivacy:
    """DP-SGD through opacus, as the engine's privacy hook (see the module doc)."""

    def __init__(self, noise_multiplier: float, max_grad_norm: float, sample_rate: float,
                 expected_batch_size: int, delta: float, seed: int, accountant: str = "rdp") -> None:
        from opacus.accountants import create_accountant

        if expected_batch_size < 1:
            raise ValueError(f"expected batch size must be >= 1, got {expected_batch_size}")
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = float(max_grad_norm)
        self.sample_rate = float(sample_rate)
        self.expected_batch_size = int(expected_batch_size)
        self.delta = float(delta)
        self.accountant_name = accountant
        self.accountant = create_accountant(accountant)
        self.noise = torch.Generator().manual_seed(seed)  # the DP noise, seeded for reproducible CPU runs
        self.id = (f"opacus-dp-sgd-sigma{self.noise_multiplier:.6g}-clip{self.max_grad_norm:g}-q{self.sample_rate:.6g}"
                   f"-delta{self.delta:g}-{accountant}-seed{seed}")

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, torch.optim.Optimizer]:
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        network = GradSampleModule(model, loss_reduction="mean")
        device = next(model.parameters()).device
        generator = self.noise
        if device.type != "cpu":
            # The noise is drawn on the parameters' device; its generator must live there too.
            generator = torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,), generator=self.noise)))
        dp_optimizer = DPOptimizer(optimizer, noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
                                   expected_batch_size=self.expected_batch_size, loss_reduction="mean",
                                   generator=generator)
        self._generator = generator
        return network, dp_optimizer

    def after_step(self, batch_size: int) -> None:
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

    def epsilon(self) -> float:
        if not self.accountant.history:
            return 0.0
        return float(self.accountant.get_epsilon(delta=self.delta))

    def state_dict(self) -> dict[str, Any]:
        generator = getattr(self, "_generator", self.noise)
        return {"history": [list(step) for step in self.accountant.history], "noise": generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.history = [tuple(step) for step in state["history"]]
        self.noise.set_state(state["noise"].cpu() if hasattr(state["noise"], "cpu") else state["noise"])


def dp_parts(manifest_rows: "Any", n_images: int, *, epsilon: float, delta: float, max_grad_norm: float,
             expected_batch_size: int, epochs: int, seed: int, accountant: str = "rdp") -> tuple[TrainingParts, dict[str, float]]:
    """The engine parts of a DP-SGD run on the training rows ``manifest_rows`` (their
    ``cache_index`` and ``patient_id``), calibrated so that ``epochs`` epochs spend
    ``(epsilon, delta)`` per patient; also the settings as a dict (for the log and tables).
    """
    codes = np.full(n_images, -1, dtype=np.int64)
    patient_codes = manifest_rows["patient_id"].astype("category").cat.codes.to_numpy()
    codes[manifest_rows["cache_index"].to_numpy()] = patient_codes
    n_patients = int(patient_codes.max()) + 1 if len(patient_codes) else 0
    if n_patients < 2:
        raise ValueError(f"DP-SGD needs at least 2 training patients, got {n_patients}")
    sample_rate = min(1.0, expected_batch_size / n_patients)
    steps = epochs * max(1, round(1 / sample_rate))
    sigma = noise_for_epsilon(epsilon, delta, sample_rate, steps, accountant)
    privacy = OpacusPrivacy(sigma, max_grad_norm, sample_rate, max(1, round(sample_rate * n_patients)), delta,
                            seed, accountant)
    parts = TrainingParts(model=build_group_norm_model, sampler=PatientSampler(codes, sample_rate), privacy=privacy)
    return parts, {"epsilon": epsilon, "delta": delta, "noise_multiplier": sigma, "sample_rate": sample_rate,
                   "steps": steps, "patients": n_patients, "max_grad_norm": max_grad_norm}
