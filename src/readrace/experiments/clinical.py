"""Kind ``clinical``: a finding classifier, its subgroup audit, and a race probe of its features.

A block names ``train`` datasets, ``archs``, ``perturbations`` and ``seeds``; every
combination is one clinical model (:class:`ClinicalModel`), trained by the same engine, on
the same splits, with the same checkpoints as the race models, on the block's ``findings``
(default: the 14 CheXpert labels of a chest-radiograph dataset; one label is a binary
finding) under its ``uncertain`` policy (:data:`readrace.tasks.UNCERTAIN_POLICIES`), with
the config's ``training`` hyperparameters overridden by the block's ``training``. Its
test predictions are scored by the shared ``score`` rule, per label. Then:

- the subgroup audit (:mod:`readrace.audits.subgroups`): thresholds chosen on its
  validation predictions, AUC / TPR / FPR / underdiagnosis per race, sex, age band and
  their intersections, best-to-worst gaps, all with patient-bootstrap intervals;
- the race probe (:mod:`readrace.audits.probe`): a logistic regression of race on the
  frozen penultimate features of the clinical model, of the race model of the same
  coordinate (``race_detection/{train}/{arch}/{perturbation}/seed{seed}``, trained by the
  race rules whether or not a race block lists it) and of an untrained network of the same
  architecture and seed. Its predictions (model id ``{clinical model}/probe/{encoder}``)
  are in the common contract and scored by the ``score`` rule.

Rules: ``workflow/rules/clinical.smk``; schema: ``$defs/clinical_block``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readrace import paths
from readrace.experiments import ExperimentKind, ImageModelCoordinate
from readrace.labels import FINDINGS
from readrace.tasks import Task, findings_task

NAME = "clinical"

#: The encoders whose features the race probe reads: the clinical model, the race model of
#: the same coordinate, and an untrained network (same architecture, seeded).
PROBE_ENCODERS: tuple[str, ...] = ("clinical", "race", "untrained")

#: The block keys that determine a clinical model besides its coordinate: two blocks that
#: train one coordinate must agree on them.
MODEL_KEYS = ("findings", "uncertain", "training")


@dataclass(frozen=True, order=True)
class ClinicalModel(ImageModelCoordinate):
    """One finding classifier: trained on ``train`` with ``arch``, ``perturbation``, ``seed``."""

    kind = NAME
    PATH = NAME + "/{train}/{arch}/{perturbation}/seed{seed}"

    @property
    def race_model(self) -> str:
        """The id of the race model of the same coordinate (the probe's comparison)."""
        return f"race_detection/{self.train}/{self.arch}/{self.perturbation}/seed{self.seed}"

    def probe(self, encoder: str) -> str:
        """The model id of the race probe on ``encoder``'s features."""
        return f"{self.path}/probe/{encoder}"



def model_from_path(path: str) -> ClinicalModel:
    """A clinical model id, or the id of one of its probes (``.../probe/{encoder}``)."""
    base, _, encoder = path.partition("/probe/")
    if encoder and encoder not in PROBE_ENCODERS:
        raise ValueError(f"{path!r}: unknown probe encoder {encoder!r} (known: {', '.join(PROBE_ENCODERS)})")
    return ClinicalModel.from_path(base)


def coordinates(block: dict[str, Any], config: dict[str, Any]) -> list[ClinicalModel]:
    return [ClinicalModel(train, arch, perturbation, int(seed)) for train in block["train"]
            for arch in block["archs"] for perturbation in block["perturbations"] for seed in block["seeds"]]


def block_of(config: dict[str, Any], model: ClinicalModel) -> dict[str, Any]:
    """The (first) clinical block that trains ``model``: its task, audit and probe settings."""
    for block in config.get("experiments", []):
        if block["kind"] == NAME and model in coordinates(block, config):
            return block
    raise KeyError(f"no clinical block of this config trains {model.path}")


def task(config: dict[str, Any], model: ClinicalModel) -> Task:
    """The finding task of ``model``, from its block and its train dataset's modality."""
    block = block_of(config, model)
    return findings_task(config["datasets"][model.train]["modality"], block.get("findings"), block["uncertain"])


def training(config: dict[str, Any], model: ClinicalModel) -> dict[str, Any]:
    """The hyperparameters of ``model``: its block's ``training`` over the config's. A block
    without one trains with the config's, as the race models do (same params, no rerun)."""
    return {**config["training"], **(block_of(config, model).get("training") or {})}


def check(number: int, block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Datasets that exist, have the splits an audit needs, and a modality with findings."""
    where = f"experiments.{number}"
    datasets = config["datasets"]
    problems = []
    for name in block["train"]:
        if name not in datasets:
            problems.append(f"{where}.train: {name!r} is not a dataset of this config")
            continue
        split = datasets[name]["split"]
        if min(split["train"], split["validation"], split["test"]) == 0:
            problems.append(f"{where}.train: {name!r} needs train, validation (thresholds) and test (audit) splits")
        if block.get("findings") is None and datasets[name]["modality"] != "cxr":
            problems.append(f"{where}.findings: {name!r} is {datasets[name]['modality']}, which has no default "
                            "finding labels; name its finding column(s)")
    unknown = [f for f in block.get("findings") or () if f not in FINDINGS]
    if unknown:
        problems.append(f"{where}.findings: {', '.join(map(repr, unknown))} are not finding columns of the manifest "
                        f"({', '.join(FINDINGS)})")
    audit = block["audit"]
    if "No Finding" not in (block.get("findings") or FINDINGS) and audit["underdiagnosis"]:
        problems.append(f"{where}.audit.underdiagnosis: needs the 'No Finding' label among the findings")
    if list(audit["age_bands"]) != sorted(set(audit["age_bands"])):
        problems.append(f"{where}.audit.age_bands: must be increasing, got {audit['age_bands']}")
    # One coordinate, one model: blocks that repeat a coordinate must agree on its task.
    for other in config.get("experiments", [])[:number]:
        if other["kind"] == NAME and set(coordinates(other, config)) & set(coordinates(block, config)):
            if any(other.get(key) != block.get(key) for key in MODEL_KEYS):
                problems.append(f"{where}: trains a model of an earlier clinical block with other "
                                f"{' or '.join(MODEL_KEYS)}; give it another seed, arch or dataset")
    return problems


def audit_file(model: ClinicalModel) -> str:
    return f"results/audits/{model.path}/subgroups.csv"


def validation_predictions(model: ClinicalModel) -> str:
    return f"results/audits/{model.path}/validation-predictions.parquet"


def probe_projection(model: ClinicalModel, encoder: str) -> str:
    return f"results/audits/{model.path}/probe-{encoder}-pca.csv"


def probe_score_files(models: list[ClinicalModel]) -> list[str]:
    """The probes' scores and, beside them, the race model's own (on the same test set)."""
    files = []
    for m in models:
        files += [paths.scores(m.probe(encoder), m.train) for encoder in PROBE_ENCODERS]
        files.append(paths.scores(m.race_model, m.train))
    return files


def score_files(models: list[ClinicalModel]) -> list[str]:
    """Internal validation of each clinical model, per label."""
    return [paths.scores(m.path, m.train) for m in models]


def targets(models: list[ClinicalModel], config: dict[str, Any]) -> list[str]:
    return [paths.CLINICAL_TABLE, paths.SUBGROUP_AUDIT_TABLE, paths.SUBGROUP_GAPS_FIGURE,
            paths.RACE_PROBE_TABLE, paths.RACE_PROBE_FIGURE]


KIND = ExperimentKind(name=NAME, coordinates=coordinates, check=check, targets=targets, model=model_from_path)
