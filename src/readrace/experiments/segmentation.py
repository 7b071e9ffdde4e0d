"""Kind ``segmentation``: lung masks for every chest dataset, scored against ground truth.

A block names the radiograph datasets with ground-truth lung masks a U-Net trains on
(``train``: one network on their union, selected on their validation Dice), the radiograph
datasets it is applied to (``apply``; default: every ``cxr`` dataset of the config), the CT
datasets segmented from Hounsfield units or, with ``ct_method: lungmask``, by lungmask from a
local weights file (``ct``; readrace.segmentation.lungmask), and the datasets whose masks are scored
against their ground truth (``truth``; default: the train datasets and the others that
have ground truth: synthetic, or with the dataset option ``lung_masks``). Each dataset gets ``results/{dataset}/cache/masks.npy``
(readrace.segmentation.masks) from exactly one method.

Coordinates (:class:`SegmentationModel`): ``segmentation/{train}/unet/seed{seed}`` for the
U-Net (``{train}``: the train datasets joined by ``+``) and ``segmentation/{dataset}/hu/seed0``
for each CT dataset (``.../lungmask/seed0`` by lungmask; its parameters only: nothing is
trained). A mask set (a dataset with ``mask_set: true``: Montgomery, Shenzhen, JSRT, which
record no race) may be trained on here and nowhere else (readrace.experiments.check_mask_sets). Rules:
``workflow/rules/segmentation.smk``; schema: ``$defs/segmentation_block``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readrace import paths
from readrace.experiments import ExperimentKind, path_pattern

NAME = "segmentation"
UNET = "unet"
HU = "hu"
LUNGMASK = "lungmask"
METHODS = (UNET, HU, LUNGMASK)
#: The methods of a block's ``ct`` datasets (``ct_method``).
CT_METHODS = (HU, LUNGMASK)
#: Joins the train datasets of one U-Net in its id (not a character of dataset names in use).
JOIN = "+"

#: Adapters of the public lung-mask sets (readrace.ingest.adapters.masksets): they record no
#: race, so their datasets must be mask sets (``mask_set: true``), and their masks are found
#: in the provider's layout without a ``lung_masks`` option.
MASK_SET_ADAPTERS = ("montgomery", "shenzhen", "jsrt")

#: Defaults of a block's optional settings (the schema documents each).
DEFAULT_UNET = {"channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 1,
                "epochs": 12, "batch_size": 16, "lr": 0.003, "weight_decay": 0.0001, "patience": 12,
                "largest_components": 2}
DEFAULT_HU = {"threshold_hu": -400.0, "min_second_fraction": 0.05, "closing": 1}
#: lungmask (readrace.segmentation.lungmask): ``weights`` has no default (a local file).
DEFAULT_LUNGMASK = {"batch_size": 20}
DEFAULT_QUALITY = {"area_low": 0.5, "area_high": 2.0, "min_lung_fraction": 0.05}


@dataclass(frozen=True, order=True)
class SegmentationModel:
    """One lung-segmentation method: a U-Net trained on ``train`` (datasets joined by ``+``)
    or the Hounsfield-unit pipeline of one CT dataset (``train`` is that dataset)."""

    train: str
    method: str
    seed: int

    kind = NAME
    PATH = NAME + "/{train}/{method}/seed{seed}"

    @property
    def path(self) -> str:
        return self.PATH.format(train=self.train, method=self.method, seed=self.seed)

    @property
    def datasets(self) -> list[str]:
        return self.train.split(JOIN)

    @classmethod
    def from_path(cls, path: str) -> SegmentationModel:
        match = _PATH.fullmatch(path)
        if match is None or not match["seed"].isdigit() or match["method"] not in METHODS:
            raise ValueError(f"{path!r} is not a segmentation model id ({cls.PATH}, method one of {METHODS})")
        return cls(match["train"], match["method"], int(match["seed"]))

    @property
    def columns(self) -> dict[str, Any]:
        return {"train_dataset": self.train, "method": self.method, "seed": self.seed}


_PATH = path_pattern(SegmentationModel.PATH)


def applied(block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The radiograph datasets the block's U-Net segments (``apply``, default every cxr dataset)."""
    if "apply" in block:
        return list(block["apply"])
    return [name for name, dataset in config["datasets"].items() if dataset["modality"] == "cxr"]


def truth_datasets(block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The datasets whose masks the block scores against their ground truth."""
    if "truth" in block:
        return list(block["truth"])
    datasets = config["datasets"]
    known = [name for name in [*applied(block, config), *block.get("ct", [])]
             if name in datasets and has_ground_truth(datasets[name])]
    return list(dict.fromkeys([*block.get("train", []), *known]))


def has_ground_truth(dataset: dict[str, Any]) -> bool:
    """Whether a dataset can have ground-truth lung masks: the synthetic cohort's (cxr, ct),
    a public mask set's adapter, or a public mask set named by its ``lung_masks`` option."""
    if dataset["adapter"] == "synthetic":
        return dataset["modality"] in ("cxr", "ct")
    if dataset["adapter"] in MASK_SET_ADAPTERS:
        return True
    return bool(dataset.get("options", {}).get("lung_masks"))


def unet_model(block: dict[str, Any]) -> SegmentationModel | None:
    if not block.get("train"):
        return None
    return SegmentationModel(JOIN.join(block["train"]), UNET, int(block.get("seed", 0)))


def ct_method(block: dict[str, Any]) -> str:
    return block.get("ct_method", HU)


def coordinates(block: dict[str, Any], config: dict[str, Any]) -> list[SegmentationModel]:
    models = [SegmentationModel(name, ct_method(block), 0) for name in block.get("ct", [])]
    unet = unet_model(block)
    return ([unet] if unet else []) + models


def unet_settings(block: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_UNET, **block.get("unet", {})}


def hu_settings(block: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_HU, **block.get("hu", {})}


def ct_settings(block: dict[str, Any]) -> dict[str, Any]:
    """The settings of the block's CT method: ``hu``, or ``lungmask`` (its weights file)."""
    if ct_method(block) == LUNGMASK:
        return {**DEFAULT_LUNGMASK, **block.get("lungmask", {})}
    return hu_settings(block)


def quality_settings(block: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_QUALITY, **block.get("quality", {})}


@dataclass(frozen=True)
class MaskSource:
    """Where one dataset's masks.npy comes from: its method's coordinate, that method's
    settings, and the block's quality settings."""

    model: SegmentationModel
    settings: dict[str, Any]
    quality: dict[str, Any]
    truth: bool  # whether the dataset's masks are scored against its ground truth
    held_out: bool  # the U-Net trained on this dataset: score its test split only


def mask_sources(config: dict[str, Any]) -> dict[str, MaskSource]:
    """Every segmented dataset of the config, with where its masks come from (the first
    block that names it; :func:`check` makes that unique)."""
    sources: dict[str, MaskSource] = {}
    for block in config.get("experiments", []):
        if block["kind"] != NAME:
            continue
        scored = set(truth_datasets(block, config))
        quality = quality_settings(block)
        unet = unet_model(block)
        if unet is not None:
            for name in applied(block, config):
                sources.setdefault(name, MaskSource(unet, unet_settings(block), quality, name in scored,
                                                    name in unet.datasets))
        for name in block.get("ct", []):
            sources.setdefault(name, MaskSource(SegmentationModel(name, ct_method(block), 0), ct_settings(block), quality,
                                                name in scored, False))
    return sources


def check(number: int, block: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Datasets that exist with the right modality; U-Net train datasets that can be trained
    on and share one cache grid with the datasets it is applied to; masked datasets named by
    one block only; scored datasets that are segmented."""
    where = f"experiments.{number}"
    datasets = config["datasets"]
    problems: list[str] = []
    for key, modality in (("train", "cxr"), ("apply", "cxr"), ("ct", "ct"), ("truth", None)):
        for name in block.get(key, []):
            if name not in datasets:
                problems.append(f"{where}.{key}: {name!r} is not a dataset of this config")
            elif modality and datasets[name]["modality"] != modality:
                problems.append(f"{where}.{key}: {name!r} is a {datasets[name]['modality']} dataset, not {modality}")
            elif JOIN in name:
                problems.append(f"{where}.{key}: dataset name {name!r} contains {JOIN!r}, which joins model ids")
    trained = [name for name in block.get("train", []) if name in datasets]
    for name in trained:
        split = datasets[name]["split"]
        if split["train"] == 0 or split["validation"] == 0:
            problems.append(f"{where}.train: {name!r} has no train or validation split to train the U-Net on")
    if block.get("apply") and not block.get("train"):
        problems.append(f"{where}.apply: a U-Net is applied only with train datasets to train it on")
    sizes = {datasets[name]["preprocess"]["size"] for name in [*trained, *applied(block, config)] if name in datasets}
    if block.get("train") and len(sizes) > 1:
        problems.append(f"{where}: the U-Net's train and apply datasets must share one cache size, got {sorted(sizes)}")
    strides = unet_settings(block)["strides"]
    factor = 1
    for stride in strides:
        factor *= stride
    for size in sizes:
        if size % factor:
            problems.append(f"{where}.unet.strides: the {size}-pixel cache is not divisible by {factor}")
    if len(unet_settings(block)["channels"]) != len(strides) + 1:
        problems.append(f"{where}.unet: channels needs one entry more than strides")
    problems += _check_lungmask(where, block)
    segmented = set(applied(block, config) if block.get("train") else []) | set(block.get("ct", []))
    for key in ("train", "truth"):
        for name in block.get(key, []):
            if name in datasets and not has_ground_truth(datasets[name]):
                problems.append(f"{where}.{key}: {name!r} has no ground-truth lung masks "
                                f"(a synthetic dataset, or one with the option lung_masks)")
    for name in block.get("truth", []):
        if name in datasets and name not in segmented:
            problems.append(f"{where}.truth: {name!r} is not segmented by this block (not in apply or ct)")
    # A dataset's masks come from one method: no two blocks may segment it.
    for other_number, other in enumerate(config.get("experiments", [])[:number]):
        if other["kind"] != NAME:
            continue
        theirs = set(applied(other, config) if other.get("train") else []) | set(other.get("ct", []))
        for name in sorted(segmented & theirs):
            problems.append(f"{where}: {name!r} is already segmented by experiments.{other_number}")
    return problems


def _check_lungmask(where: str, block: dict[str, Any]) -> list[str]:
    """lungmask needs its package and a local weights file, checked before any job runs."""
    if ct_method(block) != LUNGMASK:
        if "lungmask" in block:
            return [f"{where}.lungmask: set only with ct_method: lungmask"]
        return []
    from readrace.segmentation import lungmask  # imports neither torch nor lungmask

    problems = []
    if not lungmask.installed():
        problems.append(f"{where}.ct_method: lungmask is not installed (pip install '{lungmask.EXTRA}'); "
                        f"the default, hu, needs nothing")
    weights = block.get("lungmask", {}).get("weights")
    if not weights:
        problems.append(f"{where}.lungmask.weights: ct_method lungmask needs its weights as a local file "
                        f"(e.g. unet_r231-d5d2fc3d.pth); they are never downloaded")
    else:
        problems += [problem for problem in [lungmask.weights_problem(weights, f"{where}.lungmask.weights")] if problem]
    return problems


def targets(models: list[SegmentationModel], config: dict[str, Any]) -> list[str]:
    sources = mask_sources(config)
    files = [paths.dataset_file(paths.MASKS, name) for name in sources]
    files += [paths.SEGMENTATION_IMPLAUSIBLE, paths.SEGMENTATION_FIGURE]
    if any(source.truth for source in sources.values()):
        files.append(paths.SEGMENTATION_TABLE)
    return files


KIND = ExperimentKind(name=NAME, coordinates=coordinates, check=check, targets=targets,
                      model=SegmentationModel.from_path)
