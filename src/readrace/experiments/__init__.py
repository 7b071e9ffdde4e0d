"""The experiment matrix: coordinates, their paths, and what each model is tested on.

An experiment coordinate is (train dataset, architecture, perturbation, seed). Every
coordinate is one model, trained on its dataset's train split, selected on its validation
split, and tested on the test split of its own dataset (internal validation) and of every
other dataset of the same modality in the config (external validation). The coordinate is
spelled out in every output path, so Snakemake's wildcards expand the matrix and a change
reruns only the models it touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from readrace.labels import task_classes

#: Evaluation levels per modality: the first is the unit the model sees; "study" averages
#: the probabilities of a study's slices (CT) or images (mammography), as in the paper.
LEVELS: dict[str, tuple[str, ...]] = {
    "cxr": ("image",),
    "xr": ("image",),
    "ct": ("slice", "study"),
    "mammo": ("image", "study"),
}


@dataclass(frozen=True, order=True)
class Coordinate:
    train: str
    arch: str
    perturbation: str
    seed: int

    @property
    def path(self) -> str:
        """The coordinate as a path: ``{train}/{arch}/{perturbation}/seed{seed}``."""
        return f"{self.train}/{self.arch}/{self.perturbation}/seed{self.seed}"


def expand_experiments(config: dict[str, Any]) -> list[Coordinate]:
    """Every coordinate of the config's experiment blocks, once each, sorted."""
    coordinates = {
        Coordinate(train, arch, perturbation, int(seed))
        for block in config.get("experiments", [])
        for train in block["train"]
        for arch in block["archs"]
        for perturbation in block["perturbations"]
        for seed in block["seeds"]
    }
    return sorted(coordinates)


def evaluation_datasets(config: dict[str, Any], train: str) -> list[str]:
    """The datasets a model trained on ``train`` is tested on: itself first, then every other
    dataset of its group (the modality unless the dataset names a ``group``), in config order."""
    def group(name: str) -> str:
        dataset = config["datasets"][name]
        return dataset.get("group") or dataset["modality"]

    others = [name for name in config["datasets"] if name != train and group(name) == group(train)]
    return [train, *others]


def task_rows(manifest: pd.DataFrame, modality: str, splits: tuple[str, ...]) -> pd.DataFrame:
    """Manifest rows of ``splits`` whose race is a class of the modality's task, with an
    integer ``label`` column in the registry's class order."""
    classes = task_classes(modality)
    rows = manifest[manifest["split"].isin(splits) & manifest["race"].isin(classes)].copy()
    rows["label"] = rows["race"].map({name: k for k, name in enumerate(classes)}).astype(np.int64)
    return rows
