"""Experiments are data: kinds, their coordinates, and the registry that expands them.

Each block under ``experiments:`` in the config names its ``kind``. A kind is one
:class:`ExperimentKind` here (registered in :data:`KINDS`), one rule file
(``workflow/rules/{kind}.smk``) and one schema block (``$defs/{kind}_block`` in
``workflow/schemas/config.schema.yaml``). The kind says how a block expands into model
coordinates, what it checks while the Snakefile is parsed (beyond the schema), and which
files ``rule all`` asks for.

A coordinate spells its own path (:attr:`Coordinate.path`, ``{kind}/...``): the model's
directory is ``results/models/{path}``, its predictions ``results/predictions/{path}/{test}``
(see :mod:`readrace.paths`), so Snakemake's wildcards expand the matrix and a change reruns
only the models it touches.

Torch-free: the Snakefile expands the matrix while it is parsed, dry runs included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Protocol


class Coordinate(Protocol):
    """One model of an experiment: a frozen, sortable value that spells its path (the model
    id) and gives the key columns of its predictions and scores."""

    @property
    def kind(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def columns(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ExperimentKind:
    """What the registry needs of a kind.

    ``coordinates(block, config)``: the models of one block. ``check(number, block,
    config)``: problems the schema cannot see, each a line naming the key
    (``experiments.{number}.perturbations: ...``). ``targets(coordinates, config)``: the
    files ``rule all`` asks for, given every coordinate of this kind in the config.
    ``model(path)``: the coordinate a model id spells (jobs get the id from their wildcards).
    """

    name: str
    coordinates: Callable[[dict[str, Any], dict[str, Any]], list[Any]]
    check: Callable[[int, dict[str, Any], dict[str, Any]], list[str]]
    targets: Callable[[list[Any], dict[str, Any]], list[str]]
    model: Callable[[str], Any]


def expand_experiments(config: dict[str, Any]) -> dict[str, list[Any]]:
    """Every coordinate of the config's blocks, by kind, once each and sorted; every
    registered kind is a key (with an empty list when no block names it)."""
    found: dict[str, set] = {name: set() for name in KINDS}
    for block in config.get("experiments", []):
        found[block["kind"]].update(KINDS[block["kind"]].coordinates(block, config))
    return {name: sorted(coordinates) for name, coordinates in found.items()}


def check_experiments(config: dict[str, Any]) -> list[str]:
    """Problems of the experiment blocks that the schema cannot express, one line each."""
    problems: list[str] = []
    for number, block in enumerate(config.get("experiments", [])):
        problems += check_mask_sets(number, block, config)
        problems += KINDS[block["kind"]].check(number, block, config)
    return problems


def experiment_targets(config: dict[str, Any], coordinates: dict[str, list[Any]]) -> list[str]:
    """The files ``rule all`` asks for, kind by kind."""
    return [target for name, kind in KINDS.items() if coordinates[name] for target in kind.targets(coordinates[name], config)]


@lru_cache(maxsize=None)
def path_pattern(template: str) -> re.Pattern[str]:
    """The regular expression of a model-id template (``kind/{field}/seed{seed}``): each
    field one folder name, so that a kind spells its ids once and reads them back."""
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(part) if k % 2 == 0 else f"(?P<{part}>[^/]+)" for k, part in enumerate(parts))
    return re.compile(regex)


@dataclass(frozen=True, order=True)
class ImageModelCoordinate:
    """An image classifier trained on ``train`` with ``arch``, ``perturbation``, ``seed``,
    whose id is ``{kind}/{train}/{arch}/{perturbation}/seed{seed}``: the coordinate of the
    kinds that train one model per combination (race detection, clinical). A kind subclasses
    it and sets ``kind`` and ``PATH``; the id, its parser and the key columns are spelt here."""

    train: str
    arch: str
    perturbation: str
    seed: int

    kind: ClassVar[str]
    #: The model id as a pattern (the rules' wildcards are the fields).
    PATH: ClassVar[str]

    @property
    def path(self) -> str:
        """The model id, ``{kind}/{train}/{arch}/{perturbation}/seed{seed}``."""
        return self.PATH.format(train=self.train, arch=self.arch, perturbation=self.perturbation, seed=self.seed)

    @classmethod
    def from_path(cls, path: str) -> Any:
        match = path_pattern(cls.PATH).fullmatch(path)
        if match is None or not match["seed"].isdigit():
            raise ValueError(f"{path!r} is not a {cls.kind.replace('_', '-')} model id ({cls.PATH})")
        return cls(match["train"], match["arch"], match["perturbation"], int(match["seed"]))

    @property
    def columns(self) -> dict[str, Any]:
        """The coordinate as the key columns of its predictions and scores."""
        return {"train_dataset": self.train, "arch": self.arch, "perturbation": self.perturbation, "seed": self.seed}


def model_of(path: str) -> Any:
    """The coordinate of a model id, by the kind its first folder names."""
    kind = path.split("/", 1)[0]
    if kind not in KINDS:
        raise ValueError(f"model id {path!r} names no experiment kind (known: {', '.join(KINDS)})")
    return KINDS[kind].model(path)


def weights_of(path: str) -> str:
    """The id of the model whose model.pt a model id is tested with: its own, unless its
    coordinate names other ``weights`` (a localisation test-time protocol tests the full
    race model)."""
    return getattr(model_of(path), "weights", path)


def perturbation_at_test(path: str) -> str | None:
    """The perturbation a model id applies at test time instead of the model's own, or None."""
    return getattr(model_of(path), "test_perturbation", None)


def dataset_group(config: dict[str, Any], name: str) -> str:
    """The group of a dataset: models are tested on every dataset of their group. The
    modality, unless the dataset names a ``group``."""
    dataset = config["datasets"][name]
    return dataset.get("group") or dataset["modality"]


def is_mask_set(config: dict[str, Any], name: str) -> bool:
    """Whether a dataset is a lung-mask set (``mask_set: true``): ingested without race, it
    serves segmentation blocks only."""
    return bool(config["datasets"][name].get("mask_set"))


def evaluation_datasets(config: dict[str, Any], train: str) -> list[str]:
    """The datasets a model trained on ``train`` is tested on: itself first, then every other
    dataset of its group, in config order (mask sets, which record no race, never)."""
    group = dataset_group(config, train)
    others = [name for name in config["datasets"]
              if name != train and dataset_group(config, name) == group and not is_mask_set(config, name)]
    return [train, *others]


#: The one kind that may name a mask set: the others read race (or train on it).
MASK_SET_KINDS = frozenset({"segmentation"})


def check_mask_sets(number: int, block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """A block of a kind other than segmentation that names a mask set, by any of its keys
    (a dataset name as a value or in a list), is refused: the set records no race."""
    if block["kind"] in MASK_SET_KINDS:
        return []
    problems = []
    for key, value in block.items():
        names = value if isinstance(value, list) else [value]
        for name in names:
            if isinstance(name, str) and name in config["datasets"] and is_mask_set(config, name):
                problems.append(f"experiments.{number}.{key}: {name!r} is a mask set (datasets.{name}.mask_set: "
                                f"true), which records no race; only a segmentation block may use it, "
                                f"not a {block['kind']} block")
    return problems


def _registry() -> dict[str, ExperimentKind]:
    # The kinds' modules import the helpers above, so the registry is filled last.
    from readrace.experiments import (clinical, confounders, localisation, membership, race_detection, robustness,
                                      segmentation)

    return {kind.name: kind for kind in (race_detection.KIND, segmentation.KIND, localisation.KIND, confounders.KIND,
                                         clinical.KIND, robustness.KIND, membership.KIND)}


#: The experiment kinds, by name.
KINDS: dict[str, ExperimentKind] = _registry()
