"""Kind ``race_detection``: race classifiers, internal and external validation (Table 3).

A block names ``train`` datasets, ``archs``, ``perturbations`` and ``seeds``; every
combination is one model (:class:`RaceDetectionModel`), trained on its dataset's train split
with model selection on its validation split, and tested on the test split of every dataset
of its group (:func:`readrace.experiments.evaluation_datasets`) under the same perturbation.
The task is race, with the classes of the train dataset's modality
(:func:`readrace.tasks.race_task`). The frequency-filter models (``lpf-d{D}``, ``hpf-d{D}``)
also get the paper's Figures 1 and 2.

Rules: ``workflow/rules/race_detection.smk``; schema: ``$defs/race_detection_block``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readrace import paths
from readrace.experiments import ExperimentKind, ImageModelCoordinate, evaluation_datasets
from readrace.tasks import Task, race_task
from readrace.transforms.perturbation_ids import parse_perturbation_id

NAME = "race_detection"

#: Perturbations whose models are drawn in the filter figures (AUC against diameter).
FILTER_PERTURBATIONS = ("lpf", "hpf")


@dataclass(frozen=True, order=True)
class RaceDetectionModel(ImageModelCoordinate):
    """One race classifier: trained on ``train`` with ``arch``, ``perturbation``, ``seed``."""

    kind = NAME
    PATH = NAME + "/{train}/{arch}/{perturbation}/seed{seed}"


def task(config: dict[str, Any], train: str) -> Task:
    """The task of a model trained on dataset ``train``."""
    return race_task(config["datasets"][train]["modality"])


def coordinates(block: dict[str, Any], config: dict[str, Any]) -> list[RaceDetectionModel]:
    return [
        RaceDetectionModel(train, arch, perturbation, int(seed))
        for train in block["train"]
        for arch in block["archs"]
        for perturbation in block["perturbations"]
        for seed in block["seeds"]
    ]


def check(number: int, block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Datasets that exist and can be trained and tested on; perturbations that parse and fit
    the cache of every dataset they are applied to."""
    where = f"experiments.{number}"
    datasets = config["datasets"]
    problems = []
    trained = [name for name in block["train"] if name in datasets]
    for name in block["train"]:
        if name not in datasets:
            problems.append(f"{where}.train: {name!r} is not a dataset of this config")
            continue
        split = datasets[name]["split"]
        if split["train"] == 0 or split["validation"] == 0:
            problems.append(
                f"{where}.train: {name!r} has no train or validation split "
                "(a test-only dataset is tested on, not trained on)"
            )
        for test in evaluation_datasets(config, name):
            if datasets[test]["split"]["test"] == 0:
                problems.append(
                    f"datasets.{test}.split.test: 0, but {test!r} is a test set of the models "
                    f"trained on {name!r} (same group); give it a test split or another group"
                )
    for pid in block["perturbations"]:
        try:
            parsed = parse_perturbation_id(pid)
        except ValueError as error:
            problems.append(f"{where}.perturbations: {str(error).splitlines()[0]}")
            continue
        if parsed.name == "res":
            for name in trained:
                for test in evaluation_datasets(config, name):
                    size = datasets[test]["preprocess"]["size"]
                    if parsed.params[0] > size:
                        problems.append(
                            f"{where}.perturbations: {pid} cannot reduce the {size}-pixel cache of "
                            f"{test!r} to {parsed.params[0]} pixels"
                        )
    return sorted(set(problems), key=problems.index)


def filter_models(models: list[RaceDetectionModel]) -> list[RaceDetectionModel]:
    """The models of the frequency-filter experiments (Figures 1 and 2)."""
    return [m for m in models if parse_perturbation_id(m.perturbation).name in FILTER_PERTURBATIONS]


def filter_figure_inputs(models: list[RaceDetectionModel]) -> dict[str, str]:
    """The table, and the manifest and cache of the first filtered dataset (its test images
    are the samples of Figure 2); nothing when no model is filtered (no figure is drawn)."""
    filtered = filter_models(models)
    if not filtered:
        return {}
    dataset = filtered[0].train
    return {
        "table": paths.RACE_DETECTION_TABLE,
        "manifest": paths.dataset_file(paths.MANIFEST, dataset),
        "cache": paths.dataset_file(paths.CACHE, dataset),
    }


def filter_sample_ids(models: list[RaceDetectionModel]) -> list[str]:
    """The filter ids Figure 2 shows: low-pass, then high-pass, each by diameter."""
    ids = {parse_perturbation_id(m.perturbation) for m in filter_models(models)}
    ordered = sorted(ids, key=lambda pid: (FILTER_PERTURBATIONS.index(pid.name), pid.params))
    return [f"{pid.name}-d{pid.params[0]}" for pid in ordered]


def score_files(models: list[RaceDetectionModel], config: dict[str, Any]) -> list[str]:
    """One score file per (model, test dataset)."""
    return [paths.scores(m.path, test) for m in models for test in evaluation_datasets(config, m.train)]


def targets(models: list[RaceDetectionModel], config: dict[str, Any]) -> list[str]:
    files = [paths.RACE_DETECTION_TABLE, paths.RACE_DETECTION_MARKDOWN]
    if filter_models(models):
        files += [paths.FILTER_AUC_FIGURE, paths.FILTER_SAMPLES_FIGURE]
    return files


KIND = ExperimentKind(name=NAME, coordinates=coordinates, check=check, targets=targets,
                      model=RaceDetectionModel.from_path)
