"""Kind ``robustness``: FGSM and PGD by subgroup against the race model and the clinical
model of one coordinate, with the cross-task measurements (perturbed against the race
model, scored by the clinical model, and the other way round).

A block names ``train`` datasets, ``archs`` and ``seeds`` (models trained without a
perturbation); every combination is one audit (:class:`RobustnessAudit`) of the race model
``race_detection/{train}/{arch}/none/seed{seed}`` and the clinical model
``clinical/{train}/{arch}/none/seed{seed}``, which a clinical block must train.
``epsilons`` are in units of 1/255 of the [0, 1] intensity range.

Rules: ``workflow/rules/robustness.smk``; schema: ``$defs/robustness_block``;
library: :mod:`readrace.audits.robustness`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readrace import paths
from readrace.experiments import ExperimentKind, path_pattern
from readrace.experiments import clinical

NAME = "robustness"


@dataclass(frozen=True, order=True)
class RobustnessAudit:
    train: str
    arch: str
    seed: int

    kind = NAME
    PATH = NAME + "/{train}/{arch}/seed{seed}"

    @property
    def path(self) -> str:
        return self.PATH.format(train=self.train, arch=self.arch, seed=self.seed)

    @classmethod
    def from_path(cls, path: str) -> RobustnessAudit:
        match = _PATH.fullmatch(path)
        if match is None or not match["seed"].isdigit():
            raise ValueError(f"{path!r} is not a robustness audit id ({cls.PATH})")
        return cls(match["train"], match["arch"], int(match["seed"]))

    @property
    def columns(self) -> dict[str, Any]:
        return {"train_dataset": self.train, "arch": self.arch, "seed": self.seed}

    @property
    def clinical_model(self) -> clinical.ClinicalModel:
        return clinical.ClinicalModel(self.train, self.arch, "none", self.seed)

    @property
    def race_model(self) -> str:
        return self.clinical_model.race_model


_PATH = path_pattern(RobustnessAudit.PATH)


def coordinates(block: dict[str, Any], config: dict[str, Any]) -> list[RobustnessAudit]:
    return [RobustnessAudit(train, arch, int(seed)) for train in block["train"] for arch in block["archs"]
            for seed in block["seeds"]]


def block_of(config: dict[str, Any], audit: RobustnessAudit) -> dict[str, Any]:
    for block in config.get("experiments", []):
        if block["kind"] == NAME and audit in coordinates(block, config):
            return block
    raise KeyError(f"no robustness block of this config runs {audit.path}")


def check(number: int, block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    where = f"experiments.{number}"
    problems = []
    trained = {m for b in config.get("experiments", []) if b["kind"] == clinical.NAME
               for m in clinical.coordinates(b, config)}
    for audit in coordinates(block, config):
        if audit.train not in config["datasets"]:
            problems.append(f"{where}.train: {audit.train!r} is not a dataset of this config")
        elif audit.clinical_model not in trained:
            problems.append(f"{where}: attacks {audit.clinical_model.path}, which no clinical block trains "
                            "(add its train dataset, arch and seed, perturbation none, to a clinical block)")
        else:
            findings = clinical.task(config, audit.clinical_model).classes
            if block["finding"] not in findings:
                problems.append(f"{where}.finding: {block['finding']!r} is not a label of {audit.clinical_model.path}")
    if 0 not in block["epsilons"]:
        problems.append(f"{where}.epsilons: include 0 (the clean images: the success rate's and the AUC's reference)")
    return sorted(set(problems), key=problems.index)


def rows_file(audit: RobustnessAudit) -> str:
    return f"results/audits/{audit.path}/attacks.parquet"


def summary_file(audit: RobustnessAudit) -> str:
    return f"results/audits/{audit.path}/summary.csv"


def min_epsilon_file(audit: RobustnessAudit) -> str:
    return f"results/audits/{audit.path}/min_epsilon.csv"


def targets(audits: list[RobustnessAudit], config: dict[str, Any]) -> list[str]:
    return [paths.ROBUSTNESS_TABLE, paths.ROBUSTNESS_MIN_EPS_TABLE, paths.ROBUSTNESS_FIGURE]


KIND = ExperimentKind(name=NAME, coordinates=coordinates, check=check, targets=targets, model=RobustnessAudit.from_path)
