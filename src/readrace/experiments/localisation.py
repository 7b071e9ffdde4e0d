"""Kind ``localisation``: where in the image the race information lives (the paper's Table 2
anatomical rows and its mechanism appendix).

A block names ``train`` datasets, ``archs`` and ``seeds``, and two lists of perturbations,
one per protocol:

``test_time``
    The full-image race model (``race_detection/{train}/{arch}/none/seed{seed}``, the one
    the race-detection block trains) tested with the perturbation applied to the test images
    only, no retraining: the paper's protocol for lung / non-lung masking, and for occlusion
    of one grid cell.
``retrain``
    A model trained, selected and tested on perturbed images
    (``race_detection/{train}/{arch}/{perturbation}/seed{seed}``, trained by the
    race-detection training rule): the paper's protocol for ``patch-R-C`` and for
    ``occlude-R-C``, and readrace's second protocol for ``lung`` / ``nonlung``.

``patch-*`` and ``occlude-*`` stand for the nine cells of the 3x3 grid. ``saliency: true``
adds Grad-CAM maps of the full model (mean map per class, the share of saliency in the lungs
and in each grid cell) and the saliency-guided occlusion (``occlude-salient``: each test
image's most salient region removed, the full model retested). A block with a test-time
protocol also gets the full model on unperturbed images (``test-time`` / ``none``), the
reference row.

Each coordinate is one :class:`LocalisationModel`,
``localisation/{train}/{arch}/seed{seed}/{protocol}/{perturbation}``; its predictions come
from the shared ``predict`` rule (the weights of :attr:`LocalisationModel.weights`, the
perturbation of :attr:`LocalisationModel.test_perturbation`) and its scores from ``score``.
The experiments are internal: each model is tested on the test split of its own dataset.

Rules: ``workflow/rules/localisation.smk``; schema: ``$defs/localisation_block``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from readrace import paths
from readrace.experiments import ExperimentKind, path_pattern, segmentation
from readrace.experiments.race_detection import RaceDetectionModel
from readrace.experiments.race_detection import check as check_race_detection
from readrace.tasks import Task, race_task
from readrace.transforms.perturbation_ids import GRID_CELLS, needs_masks, parse_perturbation_id

NAME = "localisation"
PROTOCOLS = ("test-time", "retrain")
#: Modalities whose datasets have lung masks (segmentation runs on them).
MASKED_MODALITIES = ("cxr", "ct")
#: Architectures with a Grad-CAM target layer (readrace.localisation.saliency.target_layer).
SALIENCY_ARCHS = ("resnet", "densenet", "efficientnet")
#: The most salient region of an image: the bounding box of the connected region, around the
#: maximum, of the pixels whose Grad-CAM value is at least this fraction of the image's maximum.
SALIENT_FRACTION = 0.5
SALIENT = "occlude-salient"


@dataclass(frozen=True, order=True)
class LocalisationModel:
    """A race model under one localisation protocol and perturbation."""

    train: str
    arch: str
    seed: int
    protocol: str
    perturbation: str

    kind = NAME
    PATH = NAME + "/{train}/{arch}/seed{seed}/{protocol}/{perturbation}"

    @property
    def path(self) -> str:
        return self.PATH.format(train=self.train, arch=self.arch, seed=self.seed, protocol=self.protocol,
                                perturbation=self.perturbation)

    @classmethod
    def from_path(cls, path: str) -> LocalisationModel:
        match = _PATH.fullmatch(path)
        if match is None or not match["seed"].isdigit() or match["protocol"] not in PROTOCOLS:
            raise ValueError(f"{path!r} is not a localisation model id ({cls.PATH}, protocol one of {', '.join(PROTOCOLS)})")
        return cls(match["train"], match["arch"], int(match["seed"]), match["protocol"], match["perturbation"])

    @property
    def base(self) -> RaceDetectionModel:
        """The full-image race model of the same (train, arch, seed)."""
        return RaceDetectionModel(self.train, self.arch, "none", self.seed)

    @property
    def weights(self) -> str:
        """The id of the model whose model.pt is tested: the full model at test time, the
        race model trained under the perturbation for ``retrain``."""
        if self.protocol == "test-time":
            return self.base.path
        return RaceDetectionModel(self.train, self.arch, self.perturbation, self.seed).path

    @property
    def test_perturbation(self) -> str | None:
        """The perturbation applied at test time instead of the model's own (None: its own)."""
        return self.perturbation if self.protocol == "test-time" else None

    @property
    def columns(self) -> dict[str, Any]:
        return {"train_dataset": self.train, "arch": self.arch, "perturbation": self.perturbation,
                "seed": self.seed, "protocol": self.protocol}


_PATH = path_pattern(LocalisationModel.PATH)


def task(config: dict[str, Any], train: str) -> Task:
    return race_task(config["datasets"][train]["modality"])


def expand_cells(pids: list[str]) -> list[str]:
    """The ids of a block's list, ``patch-*`` and ``occlude-*`` spelled out cell by cell."""
    out = []
    for pid in pids:
        if pid in ("patch-*", "occlude-*"):
            out += [f"{pid[:-2]}-{r}-{c}" for r in range(GRID_CELLS) for c in range(GRID_CELLS)]
        else:
            out.append(pid)
    return list(dict.fromkeys(out))


def coordinates(block: dict[str, Any], config: dict[str, Any]) -> list[LocalisationModel]:
    test_time = expand_cells(block.get("test_time", []))
    if block.get("saliency", False):
        test_time.append(SALIENT)
    if test_time:  # the full model is tested anyway: its unperturbed AUC is the reference
        test_time.insert(0, "none")
    retrain = expand_cells(block.get("retrain", []))
    return [
        LocalisationModel(train, arch, int(seed), protocol, pid)
        for train in block["train"]
        for arch in block.get("archs", ["resnet18"])
        for seed in block.get("seeds", [0])
        for protocol, pids in (("test-time", test_time), ("retrain", retrain))
        for pid in dict.fromkeys(pids)
    ]


def check(number: int, block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Trainable datasets; perturbations that parse and suit the protocol and the modality."""
    where = f"experiments.{number}"
    datasets = config["datasets"]
    problems = [p for p in check_race_detection(number, {"train": block["train"], "perturbations": []}, config)]
    for key in ("test_time", "retrain"):
        for pid in expand_cells(block.get(key, [])):
            try:
                parse_perturbation_id(pid)
            except ValueError as error:
                problems.append(f"{where}.{key}: {str(error).splitlines()[0]}")
                continue
            if pid == "none" or pid == SALIENT:
                problems.append(f"{where}.{key}: {pid!r} is added by the kind itself ('none' always, "
                                f"{SALIENT!r} with saliency: true)")
            elif needs_masks(pid) == "lung":
                segmented = segmentation.mask_sources(config)
                for name in block["train"]:
                    if name not in datasets:
                        continue
                    if datasets[name]["modality"] not in MASKED_MODALITIES:
                        problems.append(f"{where}.{key}: {pid!r} needs lung masks; {name!r} is "
                                        f"{datasets[name]['modality']} (lung masks exist for {', '.join(MASKED_MODALITIES)})")
                    elif name not in segmented and datasets[name]["adapter"] != "synthetic":
                        problems.append(f"{where}.{key}: {pid!r} needs the lung masks of {name!r}: add it to a "
                                        "segmentation block (apply or ct)")
    if block.get("saliency", False):
        for arch in block.get("archs", ["resnet18"]):
            if not arch.startswith(SALIENCY_ARCHS):
                problems.append(f"{where}.archs: {arch!r} has no Grad-CAM target layer (saliency)")
    return sorted(set(problems), key=problems.index)


def score_files(models: list[LocalisationModel]) -> list[str]:
    """One score file per model, on the test split of its own dataset."""
    return [paths.scores(m.path, m.train) for m in models]


def saliency_runs(models: list[LocalisationModel]) -> list[RaceDetectionModel]:
    """The full models whose Grad-CAM is computed (those with a saliency-guided occlusion)."""
    return sorted({m.base for m in models if m.perturbation == SALIENT})


def saliency_files(models: list[LocalisationModel], what: str) -> list[str]:
    return [paths.saliency_file(what, base.path, base.train) for base in saliency_runs(models)]


def lung_datasets(models: list[LocalisationModel]) -> list[str]:
    """The datasets whose lung masks some model reads."""
    return sorted({m.train for m in models if needs_masks(m.perturbation) == "lung"})


def mask_input(model_id: str, test: str, lung_masks: Callable[[str], str]) -> dict[str, str]:
    """The mask file a localisation model's predictions on ``test`` read, by name, or none;
    ``lung_masks(dataset)`` is the lung-mask file of a dataset."""
    model = LocalisationModel.from_path(model_id)
    what = needs_masks(model.perturbation)
    if what == "lung":
        return {"masks": lung_masks(test)}
    if what == "saliency":
        return {"masks": paths.saliency_file("masks", model.base.path, test)}
    return {}


def targets(models: list[LocalisationModel], config: dict[str, Any]) -> list[str]:
    files = [paths.LOCALISATION_TABLE, paths.LOCALISATION_GRID_FIGURE, paths.LOCALISATION_LUNG_FIGURE]
    if saliency_runs(models):
        files += [paths.SALIENCY_TABLE, paths.SALIENCY_FIGURE]
    return files


KIND = ExperimentKind(name=NAME, coordinates=coordinates, check=check, targets=targets,
                      model=LocalisationModel.from_path)
