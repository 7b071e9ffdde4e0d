"""Image classifiers on a dataset's cache: the training and prediction jobs of every kind
that trains torchvision networks (race detection, the clinical finding models).

:func:`train_image_model` trains one model for a task on the rows of a training and a
validation subset, under a perturbation, resuming from its checkpoint after a kill and never
from a stale one. :func:`predict_image_model` reads what the model is from its model.pt (task,
classes, perturbation) and scores the test subset of a dataset into the predictions contract
(:mod:`readrace.evaluation.predictions`), so every metric is computed from predictions and
re-scoring never retrains.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from readrace.data.subsets import Subset
from readrace.evaluation.predictions import Predictions
from readrace.experiments import model_of, perturbation_at_test
from readrace.tasks import Level, Task, level_names
from readrace.training.checkpoint import CHECKPOINT_FILE, StaleCheckpointError, array_digest, json_digest
from readrace.training.config import TrainConfig
from readrace.training.engine import TrainResult, fit
from readrace.training.inference import load_model, predict
from readrace.training.parts import MulticlassObjective, MultilabelObjective, Objective, TrainingParts
from readrace.transforms.perturbation_ids import needs_masks
from readrace.transforms.sample import perturb_and_augment, perturbation_transform

log = logging.getLogger(__name__)

class Resampler(Protocol):
    """Draws the training rows again (e.g. to equal distributions); ``to_dict`` spells it
    for the model's fingerprint."""

    def resample(self, rows: pd.DataFrame) -> pd.DataFrame: ...

    def to_dict(self) -> dict[str, Any]: ...


TRAIN = Subset.of("train")
VALIDATION = Subset.of("validation")
TEST = Subset.of("test")


def train_config(arch: str, task: Task, seed: int, training: dict[str, Any], execution: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of one model: the hyperparameters of the config's ``training`` block,
    and where and how fast from its ``execution`` block."""
    return TrainConfig(
        arch=arch,
        n_classes=task.n_outputs,
        pretrained=None if training["pretrained"] == "none" else training["pretrained"],
        epochs=training["epochs"],
        batch_size=training["batch_size"],
        lr=training["lr"],
        weight_decay=training["weight_decay"],
        patience=training["patience"],
        seed=seed,
        device=execution["device"],
        num_workers=execution["num_workers"],
        preload_max_gb=execution["preload_max_gb"],
    )


def task_objective(task: Task) -> Objective:
    """The objective a task trains with: cross-entropy for one class per image, BCE for
    labels (leaving ignored uncertain labels out of the loss)."""
    if task.type == "multilabel":
        return MultilabelObjective(ignore_missing=task.uncertain == "ignore")
    return MulticlassObjective()


def task_labels(task: Task, rows: pd.DataFrame) -> np.ndarray:
    """The targets of ``rows`` as the task's objective takes them: class codes ``(N,)``, or
    a label matrix ``(N, L)`` (NaN: ignored)."""
    if task.type == "multilabel":
        return rows[task.truth_columns].to_numpy(dtype=np.float64)
    return rows["label"].to_numpy()


def _subset_rows(task: Task, manifest: pd.DataFrame, subset: Subset, what: str, dataset: str) -> pd.DataFrame:
    rows = task.rows(subset.select(manifest))
    if task.type == "multilabel":
        targets = task_labels(task, rows)
        both = [name for k, name in enumerate(task.classes)
                if np.nansum(targets[:, k] == 1) and np.nansum(targets[:, k] == 0)]
        if not both:
            raise ValueError(
                f"{dataset}: the {what} subset ({subset.to_dict()}) holds {len(rows)} images and no label of "
                f"{', '.join(task.classes)} with both positives and negatives; raise its split fraction or the "
                "number of patients"
            )
        return rows
    present = sorted(rows[task.target].unique())
    if len(present) < 2:
        # Model selection is on the validation AUC, which a single class leaves undefined;
        # a model cannot learn from one class.
        raise ValueError(
            f"{dataset}: the {what} subset ({subset.to_dict()}) holds {len(rows)} images of the classes "
            f"{', '.join(present) or 'none'} of {', '.join(task.classes)}; it needs at least two of them "
            "(raise its split fraction or the number of patients)"
        )
    return rows


def train_image_model(
    manifest: pd.DataFrame,
    images: np.ndarray,
    *,
    dataset: str,
    task: Task,
    arch: str,
    perturbation: str,
    seed: int,
    training: dict[str, Any],
    execution: dict[str, Any],
    out_dir: str | Path,
    cache_digest: str,
    train: Subset = TRAIN,
    validation: Subset = VALIDATION,
    resample: Resampler | None = None,
    progress: bool = True,
    masks: np.ndarray | None = None,
    parts: TrainingParts | None = None,
    select: Literal["best", "last"] = "best",
) -> TrainResult:
    """Train one model; a checkpoint of the same run resumes, a stale one is replaced.

    ``cache_digest`` identifies the cache's content (the dataset descriptor's digest): with
    the task, the subsets and the perturbation it is the model's data fingerprint, so a model
    is reused only when everything that determines it is unchanged. ``resample`` draws the
    training rows again (with replacement, so a cache row may be trained on several times
    per epoch); it enters the fingerprint.

    ``masks``: the mask array aligned with the cache that a masked perturbation (``lung``,
    ``nonlung``) reads; its content at the train and validation rows joins the fingerprint.

    ``parts`` replaces the engine's default parts (a DP-SGD sampler and privacy hook, say)
    and ``select`` is :func:`readrace.training.engine.fit`'s (``"last"``: fixed epochs, no
    model selection).
    """
    train_rows = _subset_rows(task, manifest, train, "training", dataset)
    if resample is not None:
        train_rows = resample.resample(train_rows)
    val_rows = _subset_rows(task, manifest, validation, "validation", dataset)
    # Rows outside both subsets are never read.
    if task.type == "multilabel":
        labels = np.zeros((len(images), task.n_outputs), dtype=np.float64)
    else:
        labels = np.zeros(len(images), dtype=np.int64)
    for rows in (train_rows, val_rows):
        labels[rows["cache_index"].to_numpy()] = task_labels(task, rows)
    identity = {
        "cache": cache_digest, "task": task.to_dict(), "perturbation": perturbation,
        "train": train.to_dict(), "validation": validation.to_dict(),
    }
    if resample is not None:  # absent otherwise, so that earlier models keep their fingerprint
        identity["resample"] = resample.to_dict()
    masks = _masks_for(perturbation, masks, images, dataset)
    if masks is not None:
        identity["masks"] = array_digest(masks, np.concatenate([train_rows["cache_index"], val_rows["cache_index"]]))
    data_fingerprint = json_digest(identity)
    train_transform, eval_transform = perturb_and_augment(perturbation_transform(perturbation, masks),
                                                          augment=training["augment"])
    config = train_config(arch, task, seed, training, execution)
    arguments = dict(data_fingerprint=data_fingerprint, train_transform=train_transform,
                     eval_transform=eval_transform, task=task.to_dict(), progress=progress, select=select)
    if parts is None and task.type != "multiclass":
        # The multiclass default is left implicit so that the race models' part ids, and
        # with them their fingerprints, stay as they were.
        parts = TrainingParts(objective=task_objective(task))
    if parts is not None:
        arguments["parts"] = parts
    train_idx, val_idx = train_rows["cache_index"].to_numpy(), val_rows["cache_index"].to_numpy()
    log.info("training %s %s on %d images (validation %d), classes %s", dataset, arch,
             len(train_idx), len(val_idx), ", ".join(task.classes))
    try:
        return fit(images, labels, train_idx, val_idx, config, out_dir, **arguments)
    except StaleCheckpointError as error:
        # Snakemake reruns a job when its params or inputs change: the checkpoint of the
        # previous run must not be resumed.
        log.warning("%s; training from scratch", error)
        (Path(out_dir) / CHECKPOINT_FILE).unlink()
        return fit(images, labels, train_idx, val_idx, config, out_dir, **arguments)


def _masks_for(perturbation: str, masks: np.ndarray | None, images: np.ndarray, dataset: str | None) -> np.ndarray | None:
    """The masks a perturbation reads, checked against the cache; None when it reads none."""
    what = needs_masks(perturbation)
    if what is None:
        return None
    if masks is None:
        raise ValueError(f"{dataset}: perturbation {perturbation!r} needs the {what} masks of the dataset, and none were given")
    if masks.shape != images.shape:
        raise ValueError(
            f"{dataset}: the {what} masks have shape {masks.shape}, the image cache {images.shape}; "
            "masks must be aligned with the cache row for row, on its grid"
        )
    return masks


def predict_image_model(
    model_path: str | Path,
    manifest: pd.DataFrame,
    images: np.ndarray,
    *,
    keys: dict[str, Any],
    units: dict[str, str],
    execution: dict[str, Any],
    test: Subset = TEST,
    perturbation: str | None = None,
    masks: np.ndarray | None = None,
) -> Predictions:
    """The model's class probabilities for every image of ``test`` that belongs to its task.

    What the model predicts and under which perturbation come from its model.pt. ``keys``
    are the columns that identify the model and the test dataset (``kind``, ``model``, the
    coordinate's columns, ``test_dataset``); ``units`` the test dataset descriptor's, which
    name the levels and the bootstrap unit for what the dataset's ids are.

    ``perturbation``: a perturbation applied at test time only, instead of the model's own
    (the test-time protocols of the localisation experiments); ``masks``: the mask array
    aligned with the test cache that a masked perturbation reads.
    """
    model, meta = load_model(model_path, device="cpu")
    applied = perturbation if perturbation is not None else meta["perturbation"]
    if keys.get("perturbation", applied) != applied:
        how = "trained" if perturbation is None else "tested at test time"
        raise ValueError(f"{model_path} was {how} under {applied!r}, not {keys['perturbation']!r}")
    task = Task.from_dict(meta["task"])
    rows = task.rows(test.select(manifest))
    if rows.empty:
        raise ValueError(
            f"{keys.get('test_dataset')}: no images of the classes {', '.join(task.classes)} in the subset {test.to_dict()}"
        )
    seed = meta["config"]["seed"]
    transform = perturbation_transform(applied, _masks_for(applied, masks, images, keys.get("test_dataset")))
    probs = predict(model, images, rows["cache_index"].to_numpy(), transform=transform,
                    batch_size=execution["predict_batch_size"], device=execution["device"], seed=seed,
                    objective=task_objective(task))
    table = pd.DataFrame({**keys, "image_id": rows["image_id"].to_numpy(), "patient_id": rows["patient_id"].to_numpy(),
                          "study_id": rows["study_id"].to_numpy()})
    if task.type == "multilabel":
        for column in task.truth_columns:
            table[column] = rows[column].to_numpy(dtype=np.float64)
    else:
        table["label"] = rows["label"].to_numpy()
    for k, column in enumerate(task.probability_columns):
        table[column] = probs[:, k].astype(np.float64)
    levels = tuple(Level(name, level.by) for name, level in zip(level_names(task, units), task.levels))
    return Predictions(table, task, levels, bootstrap_unit=units["patient"], keys=tuple(keys))


def predict_job(
    model_path: str | Path,
    manifest_path: str | Path,
    cache_path: str | Path,
    descriptor_path: str | Path,
    *,
    model_id: str,
    test_dataset: str,
    execution: dict[str, Any],
    test: Subset | None = None,
    masks_path: str | Path | None = None,
) -> Predictions:
    """:func:`predict_image_model` on the files of a prediction job: the model ``model_id``
    (a coordinate's path, which also says whether a perturbation applies at test time only)
    on the ``test`` rows of ``test_dataset`` (default: the test split, or the subset the
    coordinate was trained on, such as the confounders' no-finding rows)."""
    coordinate = model_of(model_id)
    descriptor = json.loads(Path(descriptor_path).read_text())
    return predict_image_model(
        model_path,
        pd.read_parquet(manifest_path),
        np.load(cache_path, mmap_mode="r"),
        keys={"kind": coordinate.kind, "model": model_id, **coordinate.columns, "test_dataset": test_dataset},
        units=descriptor["units"],
        execution=execution,
        perturbation=perturbation_at_test(model_id),
        masks=np.load(masks_path, mmap_mode="r") if masks_path is not None else None,
        test=test if test is not None else getattr(coordinate, "test_subset", TEST),
    )

