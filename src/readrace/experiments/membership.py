"""Kind ``membership``: the patient-level membership privacy audit.

A block names ``datasets``, ``archs``, ``n_models`` (N, even), a design ``seed``, the
``pool`` splits, the scoring ``views``, the shadow ``training`` hyperparameters (on top of
the config's ``training`` block) and a DP-SGD sweep (``dp.epsilons``). Every (dataset, arch,
privacy) is one **audit** of N shadow models; privacy is ``none`` or ``dp-eps{E}``. Each
shadow model is one coordinate (:class:`MembershipModel`), trained on its half of the pool's
patients (:mod:`readrace.audits.shadow`); the audit's scores, attacks and disparity tables
come from :mod:`readrace.audits.membership`. Utility is the race AUC of shadow 0 on the
dataset's test split, through the shared ``predict`` and ``score`` rules.

Rules: ``workflow/rules/membership.smk``; schema: ``$defs/membership_block``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readrace import paths
from readrace.experiments import ExperimentKind, path_pattern
from readrace.tasks import Task, race_task

NAME = "membership"
NO_DP = "none"

#: Settings of a block that every audit of it carries (the params of its jobs).
AUDIT_KEYS = ("pool", "views", "training", "top_fraction", "exposed_auc", "age_bands", "control_seed")


def privacy_id(epsilon: float | None) -> str:
    """``none``, or ``dp-eps{E}`` for DP-SGD at epsilon E."""
    return NO_DP if epsilon is None else f"dp-eps{epsilon:g}"


def privacy_epsilon(privacy: str) -> float | None:
    if privacy == NO_DP:
        return None
    if not privacy.startswith("dp-eps"):
        raise ValueError(f"{privacy!r} is not a privacy id (none or dp-eps{{E}})")
    return float(privacy[len("dp-eps"):])


@dataclass(frozen=True, order=True)
class MembershipAudit:
    """N shadow models of one (dataset, arch, privacy, design seed)."""

    train: str
    arch: str
    privacy: str
    n_models: int
    seed: int

    PATH = NAME + "/{train}/{arch}/{privacy}/n{n_models}/seed{seed}"

    @property
    def path(self) -> str:
        return self.PATH.format(train=self.train, arch=self.arch, privacy=self.privacy, n_models=self.n_models,
                                seed=self.seed)

    @property
    def epsilon(self) -> float | None:
        return privacy_epsilon(self.privacy)

    def shadows(self) -> list[MembershipModel]:
        return [MembershipModel(self.train, self.arch, self.privacy, self.n_models, self.seed, k)
                for k in range(self.n_models)]

    @property
    def columns(self) -> dict[str, Any]:
        return {"train_dataset": self.train, "arch": self.arch, "privacy": self.privacy,
                "n_models": self.n_models, "seed": self.seed}


@dataclass(frozen=True, order=True)
class MembershipModel:
    """Shadow model ``shadow`` of an audit."""

    train: str
    arch: str
    privacy: str
    n_models: int
    seed: int
    shadow: int

    kind = NAME
    PATH = MembershipAudit.PATH + "/shadow{shadow}"

    @property
    def audit(self) -> MembershipAudit:
        return MembershipAudit(self.train, self.arch, self.privacy, self.n_models, self.seed)

    @property
    def path(self) -> str:
        return f"{self.audit.path}/shadow{self.shadow}"

    @classmethod
    def from_path(cls, path: str) -> MembershipModel:
        match = _PATH.fullmatch(path)
        if match is None or not all(match[k].isdigit() for k in ("n_models", "seed", "shadow")):
            raise ValueError(f"{path!r} is not a membership shadow-model id ({cls.PATH})")
        return cls(match["train"], match["arch"], match["privacy"], int(match["n_models"]), int(match["seed"]),
                   int(match["shadow"]))

    @property
    def columns(self) -> dict[str, Any]:
        return {**self.audit.columns, "shadow": self.shadow}


_PATH = path_pattern(MembershipModel.PATH)


def task(config: dict[str, Any], train: str) -> Task:
    return race_task(config["datasets"][train]["modality"])


def block_audits(block: dict[str, Any]) -> list[MembershipAudit]:
    privacies = [NO_DP, *[privacy_id(e) for e in block["dp"]["epsilons"]]]
    return [MembershipAudit(train, arch, privacy, int(block["n_models"]), int(block["seed"]))
            for train in block["datasets"] for arch in block["archs"] for privacy in privacies]


def coordinates(block: dict[str, Any], config: dict[str, Any]) -> list[MembershipModel]:
    return [model for audit in block_audits(block) for model in audit.shadows()]


def audit_settings(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per audit id: its block's settings (shadow training merged over ``training``) and
    its DP settings (None without DP). The Snakefile's params functions read this."""
    settings: dict[str, dict[str, Any]] = {}
    for block in config.get("experiments", []):
        if block["kind"] != NAME:
            continue
        for audit in block_audits(block):
            entry = {key: block[key] for key in AUDIT_KEYS}
            entry["training"] = {**config["training"], **block["training"]}
            entry["dp"] = None if audit.epsilon is None else {
                "epsilon": audit.epsilon, **{k: v for k, v in block["dp"].items() if k != "epsilons"}}
            settings.setdefault(audit.path, entry)
    return settings


def check(number: int, block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Datasets that exist and hold a pool and a test split (the RMIA population); one
    setting per audit when two blocks name the same audit."""
    where = f"experiments.{number}"
    datasets = config["datasets"]
    problems = []
    for name in block["datasets"]:
        if name not in datasets:
            problems.append(f"{where}.datasets: {name!r} is not a dataset of this config")
            continue
        split = datasets[name]["split"]
        if sum(split[s] for s in block["pool"]) == 0:
            problems.append(f"{where}.pool: {name!r} has no patients in the splits {block['pool']}")
        if split["test"] == 0 or "test" in block["pool"]:
            problems.append(f"{where}: {name!r} needs a test split outside the pool (the reference population "
                            "of RMIA and the utility test set); set datasets.{name}.split.test > 0 and keep "
                            "'test' out of pool")
    if len(set(block["views"])) != len(block["views"]):
        problems.append(f"{where}.views: a view is named twice")
    mine = {audit.path: audit for audit in block_audits(block)}
    dp_settings = {k: v for k, v in block["dp"].items() if k != "epsilons"}
    for other_number, other in enumerate(config.get("experiments", [])[:number]):
        if other["kind"] != NAME:
            continue
        shared = [mine[a.path] for a in block_audits(other) if a.path in mine]
        differ = any(other[k] != block[k] for k in AUDIT_KEYS)
        if any(a.epsilon is not None for a in shared):
            differ |= {k: v for k, v in other["dp"].items() if k != "epsilons"} != dp_settings
        if shared and differ:
            problems.append(f"{where}: audits of experiments.{other_number} with other settings "
                            f"({', '.join(a.path for a in shared[:3])}): two blocks must not name one audit differently")
    return problems


def audits(models: list[MembershipModel]) -> list[MembershipAudit]:
    return sorted({model.audit for model in models})


#: Per-audit outputs, under results/membership/{audit}/.
AUDIT_DIR = "results/{audit}"
AUDIT_FILES = ("records.csv", "patients.csv", "attacks.csv", "disparity.csv", "tests.csv", "summary.csv")
SCORES_FILE = "scores.parquet"


def audit_dir(audit: MembershipAudit | str) -> str:
    return AUDIT_DIR.format(audit=audit if isinstance(audit, str) else audit.path)


def audit_file(audit: MembershipAudit | str, name: str) -> str:
    return f"{audit_dir(audit)}/{name}"


def utility_scores(audit: MembershipAudit) -> str:
    """The score file of shadow 0 on its dataset's test split (the audit's utility)."""
    return paths.scores(audit.shadows()[0].path, audit.train)


def report_inputs(models: list[MembershipModel]) -> dict[str, list[str]]:
    found = audits(models)
    return {"summaries": [audit_file(a, "summary.csv") for a in found],
            "records": [audit_file(a, "records.csv") for a in found],
            "patients": [audit_file(a, "patients.csv") for a in found],
            "attacks": [audit_file(a, "attacks.csv") for a in found],
            "disparity": [audit_file(a, "disparity.csv") for a in found],
            "tests": [audit_file(a, "tests.csv") for a in found],
            "utility": [utility_scores(a) for a in found]}


def arch_classes(models: list[MembershipModel], config: dict[str, Any]) -> dict[str, int]:
    """Per architecture of the audits, the number of classes of its (first) dataset's task:
    what the report needs to count the network's parameters."""
    out: dict[str, int] = {}
    for audit in audits(models):
        out.setdefault(audit.arch, len(task(config, audit.train).classes))
    return out


def targets(models: list[MembershipModel], config: dict[str, Any]) -> list[str]:
    return [paths.MEMBERSHIP_TABLE, paths.MEMBERSHIP_SUMMARY, paths.MEMBERSHIP_SURVIVAL_FIGURE,
            paths.MEMBERSHIP_DISPARITY_FIGURE, paths.MEMBERSHIP_DP_FIGURE, paths.MEMBERSHIP_CAPACITY_FIGURE]


KIND = ExperimentKind(name=NAME, coordinates=coordinates, check=check, targets=targets,
                      model=MembershipModel.from_path)
