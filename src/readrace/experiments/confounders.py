"""Kind ``confounders``: could patient variables or pixel statistics explain race detection,
and does the image model still read race where they are held fixed (the paper's Table 2)?

A block names ``datasets`` and, for each of them:

- ``features`` x ``estimators`` x ``seeds``: tabular models of race
  (:class:`TabularModel`, ``confounders/tabular/{train}/{features}/{estimator}/seed{seed}``),
  fitted on the dataset's train split and tested on its test split;
- ``stratify``: every race-detection model of the dataset without perturbation re-scored
  within the strata of ``confounders.strata`` (no retraining);
- ``retrain`` x ``archs`` x ``seeds``: image models retrained on a subset
  (:class:`RetrainModel`, ``confounders/retrain/{train}/{arch}/{subset}/seed{seed}``):
  ``nofinding`` (trained, selected and tested on ``No Finding == 1``) or ``equal`` (the
  training split resampled by :class:`readrace.confounders.sampler.EqualDistribution`),
  tested on every dataset of the group like a race-detection model;
- ``manufacturers`` (dataset -> manufacturer names, as its manifest spells them) x ``archs``
  x ``seeds``: acquisition by manufacturer, an image model retrained on the train and
  validation images of one manufacturer (subset ``manufacturer-{slug}``,
  :mod:`readrace.confounders.acquisition`), predicting the whole test split and scored within
  each manufacturer's test images (the ``manufacturer`` stratifier), so that the table says
  which manufacturer trained and which tested.

The subset is part of the model id, so a change reruns only its models. Settings shared by
every block (grids, label policy, strata, sampler) are the config's ``confounders`` key.

Rules: ``workflow/rules/confounders.smk``; schema: ``$defs/confounders_block``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readrace import paths
from readrace.confounders import acquisition
from readrace.confounders.features import feature_set
from readrace.data.subsets import Subset
from readrace.experiments import ExperimentKind, evaluation_datasets, path_pattern
from readrace.experiments import race_detection
from readrace.tasks import Task, race_task

NAME = "confounders"

#: Retraining subsets: what each trains, selects and tests on.
NO_FINDING = {"No Finding": [1]}
SUBSETS: tuple[str, ...] = ("nofinding", "equal")
#: The retrain rule's ``subset`` wildcard: the named subsets and ``manufacturer-{slug}``.
SUBSET_WILDCARD = "|".join((*SUBSETS, acquisition.SUBSET_PATTERN))


class _ByPath:
    """Coordinates of different classes sort together, by model id."""

    def __lt__(self, other: Any) -> bool:
        return self.path < other.path


@dataclass(frozen=True)
class TabularModel(_ByPath):
    """Race from patient variables or pixel statistics of ``train`` (tested on its test split)."""

    train: str
    features: str
    estimator: str
    seed: int

    kind = NAME
    PATH = NAME + "/tabular/{train}/{features}/{estimator}/seed{seed}"

    @property
    def path(self) -> str:
        return self.PATH.format(train=self.train, features=self.features, estimator=self.estimator, seed=self.seed)

    @property
    def columns(self) -> dict[str, Any]:
        return {"train_dataset": self.train, "features": self.features, "estimator": self.estimator, "seed": self.seed}

    @property
    def tests(self) -> list[str]:
        return [self.train]


@dataclass(frozen=True)
class RetrainModel(_ByPath):
    """A race classifier retrained on a subset of ``train`` (``nofinding``, ``equal``)."""

    train: str
    arch: str
    subset: str
    seed: int

    kind = NAME
    PATH = NAME + "/retrain/{train}/{arch}/{subset}/seed{seed}"

    @property
    def path(self) -> str:
        return self.PATH.format(train=self.train, arch=self.arch, subset=self.subset, seed=self.seed)

    @property
    def columns(self) -> dict[str, Any]:
        return {"train_dataset": self.train, "arch": self.arch, "perturbation": "none", "subset": self.subset,
                "seed": self.seed}

    @property
    def by_manufacturer(self) -> bool:
        """Trained on one manufacturer's images (acquisition by manufacturer)."""
        return acquisition.is_manufacturer_subset(self.subset)

    def split_subset(self, split: str, manufacturer: str | None = None) -> Subset:
        """The rows of ``split`` this model trains, selects or is tested on. A model of one
        manufacturer trains and selects on ``manufacturer``'s rows (its name, which the id
        only spells as a slug) and predicts the whole test split, to be scored within each
        manufacturer."""
        if self.by_manufacturer:
            if split == "test":
                return Subset.of("test")
            if manufacturer is None or acquisition.subset_name(manufacturer) != self.subset:
                raise ValueError(f"{self.path}: the {split} rows need the manufacturer named {self.subset!r}, "
                                 f"got {manufacturer!r}")
            return Subset.of(split, {"manufacturer": [manufacturer]})
        return Subset.of(split, NO_FINDING if self.subset == "nofinding" else None)

    @property
    def test_subset(self) -> Subset:
        """What the predict rule scores (read by workflow/scripts/predict.py)."""
        return self.split_subset("test")

    @property
    def resampled(self) -> bool:
        return self.subset == "equal"


_TABULAR = path_pattern(TabularModel.PATH)
_RETRAIN = path_pattern(RetrainModel.PATH)


def model(path: str) -> TabularModel | RetrainModel:
    """The coordinate a ``confounders/...`` model id spells."""
    for pattern, cls, fields in ((_TABULAR, TabularModel, ("train", "features", "estimator")),
                                 (_RETRAIN, RetrainModel, ("train", "arch", "subset"))):
        match = pattern.fullmatch(path)
        if match and match["seed"].isdigit():
            return cls(*(match[f] for f in fields), int(match["seed"]))
    raise ValueError(f"{path!r} is not a confounders model id ({TabularModel.PATH} or {RetrainModel.PATH})")


def task(config: dict[str, Any], train: str) -> Task:
    return race_task(config["datasets"][train]["modality"])


def coordinates(block: dict[str, Any], config: dict[str, Any]) -> list[TabularModel | RetrainModel]:
    seeds = [int(s) for s in block["seeds"]]
    tabular = [TabularModel(d, f, e, s) for d in block["datasets"] for f in block["features"]
               for e in block["estimators"] for s in seeds]
    retrain = [RetrainModel(d, a, subset, s) for d in block["datasets"] for a in block["archs"]
               for subset in block["retrain"] for s in seeds]
    by_manufacturer = [RetrainModel(d, a, acquisition.subset_name(name), s)
                       for d, names in block.get("manufacturers", {}).items() for name in names
                       for a in block["archs"] for s in seeds]
    return tabular + retrain + by_manufacturer


def manufacturer_names(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """dataset -> retrain subset -> the manufacturer's name, over every confounders block."""
    names: dict[str, dict[str, str]] = {}
    for block in config.get("experiments", []):
        if block["kind"] == NAME:
            for dataset, listed in block.get("manufacturers", {}).items():
                for name in listed:
                    names.setdefault(dataset, {})[acquisition.subset_name(name)] = name
    return names


def manufacturer_of(config: dict[str, Any], train: str, subset: str) -> str | None:
    """The manufacturer a retrain of ``train`` on ``subset`` trains on (None: not by manufacturer)."""
    if not acquisition.is_manufacturer_subset(subset):
        return None
    names = manufacturer_names(config).get(train, {})
    if subset not in names:
        raise ValueError(f"{subset!r}: no manufacturer of {train!r} in the config's confounders blocks spells it")
    return names[subset]


def manufacturer_models(config: dict[str, Any]) -> list[RetrainModel]:
    """Every model retrained on one manufacturer's images, over every confounders block."""
    return sorted({m for block in config.get("experiments", []) if block["kind"] == NAME
                   for m in retrain_models(coordinates(block, config)) if m.by_manufacturer})


def stratified_models(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(race-detection model id, test dataset) of every stratified evaluation: the models
    without perturbation of each ``stratify`` block's datasets, on their own test split."""
    models = {m for block in config.get("experiments", []) if block["kind"] == race_detection.NAME
              for m in race_detection.coordinates(block, config)}
    wanted = {d for block in config.get("experiments", []) if block["kind"] == NAME and block["stratify"]
              for d in block["datasets"]}
    return sorted((m.path, m.train) for m in models if m.train in wanted and m.perturbation == "none")


def check(number: int, block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    where = f"experiments.{number}"
    datasets = config["datasets"]
    problems = []
    for name in block["features"]:
        try:
            feature_set(name)
        except ValueError as error:
            problems.append(f"{where}.features: {error}")
    for name, listed in block.get("manufacturers", {}).items():
        if name not in block["datasets"]:
            problems.append(f"{where}.manufacturers: {name!r} is not one of the block's datasets")
        elif datasets.get(name, {}).get("split", {}).get("validation", 1) == 0:
            problems.append(f"{where}.manufacturers: {name!r} needs a validation split to retrain")
        slugs = [acquisition.slug(m) for m in listed]
        for manufacturer, spelled in zip(listed, slugs):
            if not spelled:
                problems.append(f"{where}.manufacturers.{name}: {manufacturer!r} has no letter or digit to name a folder")
            elif slugs.count(spelled) > 1:
                problems.append(f"{where}.manufacturers.{name}: {manufacturer!r} and another name share the folder {spelled!r}")
    for name in block["datasets"]:
        if name not in datasets:
            problems.append(f"{where}.datasets: {name!r} is not a dataset of this config")
            continue
        split = datasets[name]["split"]
        if split["train"] == 0 or split["test"] == 0 or (block["retrain"] and split["validation"] == 0):
            problems.append(f"{where}.datasets: {name!r} needs a train and a test split (and a validation split to retrain)")
        if block["retrain"] and datasets[name]["modality"] != "cxr":
            problems.append(
                f"{where}.retrain: nofinding and equal read the finding labels (No Finding); "
                f"{name!r} is not a chest-radiograph dataset"
            )
        if block["stratify"]:
            stratified = {test for _, test in stratified_models(config)}
            if name not in stratified:
                problems.append(
                    f"{where}.stratify: no race_detection model of {name!r} without perturbation to stratify; "
                    "add one or set stratify: false"
                )
    return problems


def tabular_models(coordinates: list[Any]) -> list[TabularModel]:
    return [c for c in coordinates if isinstance(c, TabularModel)]


def retrain_models(coordinates: list[Any]) -> list[RetrainModel]:
    return [c for c in coordinates if isinstance(c, RetrainModel)]


def score_files(coordinates: list[Any], config: dict[str, Any]) -> list[str]:
    """The scores of every tabular and retrained model on each of its test datasets."""
    files = [paths.scores(m.path, m.train) for m in tabular_models(coordinates)]
    files += [paths.scores(m.path, test) for m in retrain_models(coordinates) for test in evaluation_datasets(config, m.train)]
    return files


def strata_files(config: dict[str, Any]) -> list[str]:
    """The stratified scores: the race-detection models', and each model of one manufacturer
    within the manufacturers of its own test split."""
    files = [paths.strata(model, test) for model, test in stratified_models(config)]
    return files + [paths.strata(m.path, m.train) for m in manufacturer_models(config)]


def strata_settings(config: dict[str, Any], model_id: str) -> dict[str, Any]:
    """How a stratify job cuts its predictions: the config's strata, or, for a model of one
    manufacturer, the manufacturers alone."""
    strata = config["confounders"]["strata"]
    coordinate = model(model_id) if model_id.startswith(NAME + "/") else None
    if isinstance(coordinate, RetrainModel) and coordinate.by_manufacturer:
        return {"variables": ["manufacturer"], "bands": {}, "intersections": False,
                "min_patients": strata["min_patients"]}
    return strata


def image_score_files(config: dict[str, Any]) -> list[str]:
    """The scores of the image models the table shows beside the confounders: the
    race-detection models without perturbation of the blocks' datasets, on their own test
    split and (acquisition: trained on one site, tested on the others) on every other
    dataset of their group."""
    datasets = {d for block in config.get("experiments", []) if block["kind"] == NAME for d in block["datasets"]}
    models = {m for block in config.get("experiments", []) if block["kind"] == race_detection.NAME
              for m in race_detection.coordinates(block, config)}
    return sorted(paths.scores(m.path, test) for m in models if m.train in datasets and m.perturbation == "none"
                  for test in evaluation_datasets(config, m.train))


def confounder_datasets(config: dict[str, Any]) -> list[str]:
    """Every dataset of a confounders block, in config order."""
    named = {d for block in config.get("experiments", []) if block["kind"] == NAME for d in block["datasets"]}
    return [d for d in config["datasets"] if d in named]


def manifest_files(config: dict[str, Any]) -> list[str]:
    """The manifests whose patient variables the coverage table counts."""
    return [paths.dataset_file(paths.MANIFEST, d) for d in confounder_datasets(config)]


def targets(coordinates: list[Any], config: dict[str, Any]) -> list[str]:
    return [paths.CONFOUNDERS_TABLE, paths.CONFOUNDERS_MARKDOWN, paths.CONFOUNDERS_FOREST_FIGURE,
            paths.CONFOUNDER_VARIABLES]


KIND = ExperimentKind(name=NAME, coordinates=coordinates, check=check, targets=targets, model=model)
