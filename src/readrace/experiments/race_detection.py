"""The paper's core experiment: train a race classifier per coordinate, predict, score.

- :func:`train_race_model` trains one coordinate on its dataset's cache (train split, model
  selection on the validation split), resuming from its checkpoint after a kill.
- :func:`predict_race` writes one row per test image with every class probability, so that
  every metric is computed from predictions and re-scoring never retrains.

Scoring the predictions is readrace.evaluation.scoring's job (it needs no torch).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readrace.experiments import LEVELS, Coordinate, task_rows
from readrace.labels import task_classes
from readrace.evaluation.scoring import probability_columns
from readrace.training.checkpoint import CHECKPOINT_FILE, StaleCheckpointError, array_digest, json_digest
from readrace.training.config import TrainConfig
from readrace.training.engine import TrainResult, fit
from readrace.training.inference import load_model, predict
from readrace.transforms.sample import perturb_and_augment, perturbation_transform

log = logging.getLogger(__name__)

def train_config(coordinate: Coordinate, modality: str, training: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a coordinate from the config's ``training`` block."""
    pretrained = training["pretrained"]
    return TrainConfig(
        arch=coordinate.arch,
        n_classes=len(task_classes(modality)),
        pretrained=None if pretrained == "none" else pretrained,
        epochs=training["epochs"],
        batch_size=training["batch_size"],
        lr=training["lr"],
        weight_decay=training["weight_decay"],
        patience=training["patience"],
        seed=coordinate.seed,
        device=training["device"],
        num_workers=training["num_workers"],
        preload_max_gb=training["preload_max_gb"],
    )


def race_task(modality: str) -> dict[str, Any]:
    """The race-detection task of a modality, as model.pt records it."""
    return {"name": "race", "type": "multiclass", "target": "race",
            "classes": list(task_classes(modality)), "levels": list(LEVELS[modality])}


def train_race_model(
    manifest: pd.DataFrame,
    images: np.ndarray,
    modality: str,
    coordinate: Coordinate,
    training: dict[str, Any],
    out_dir: str | Path,
    progress: bool = True,
    cache_digest: str | None = None,
) -> TrainResult:
    """Train one coordinate; a checkpoint of the same run resumes, a stale one is replaced.

    ``cache_digest`` identifies the content of the cache; when None, the pixels of the
    train and validation rows are hashed here (:func:`array_digest`).
    """
    rows = task_rows(manifest, modality, ("train", "validation"))
    labels = np.full(len(images), -1, dtype=np.int64)
    labels[rows["cache_index"].to_numpy()] = rows["label"].to_numpy()
    train_idx = rows.loc[rows["split"] == "train", "cache_index"].to_numpy()
    val_idx = rows.loc[rows["split"] == "validation", "cache_index"].to_numpy()
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(
            f"{coordinate.train}: the train and validation splits need images of the classes "
            f"{', '.join(task_classes(modality))}; found {len(train_idx)} and {len(val_idx)}"
        )
    present = sorted(rows.loc[rows["split"] == "validation", "race"].unique())
    if len(present) < 2:
        # Model selection is on the validation AUC, which a single class leaves undefined.
        raise ValueError(
            f"{coordinate.train}: the validation split holds only {', '.join(present)} patients; "
            "raise its split.validation fraction or the number of patients"
        )
    labels[labels < 0] = 0  # rows outside both splits are never read; fit needs valid codes
    config = train_config(coordinate, modality, training)
    task = race_task(modality)
    if cache_digest is None:
        cache_digest = array_digest(images, np.concatenate([train_idx, val_idx]))
    data_fingerprint = json_digest({"cache": cache_digest, "task": task, "perturbation": coordinate.perturbation})
    train_transform, eval_transform = perturb_and_augment(coordinate.perturbation, augment=training["augment"])
    kwargs = dict(data_fingerprint=data_fingerprint, train_transform=train_transform,
                  eval_transform=eval_transform, task=task, progress=progress)
    log.info(
        "training %s on %d images (validation %d), classes %s",
        coordinate.path, len(train_idx), len(val_idx), ", ".join(task_classes(modality)),
    )
    try:
        return fit(images, labels, train_idx, val_idx, config, out_dir, **kwargs)
    except StaleCheckpointError as error:
        # Snakemake reruns a job when its params or inputs change: the old checkpoint
        # belongs to the previous run and must not be resumed.
        log.warning("%s; training from scratch", error)
        (Path(out_dir) / CHECKPOINT_FILE).unlink()
        return fit(images, labels, train_idx, val_idx, config, out_dir, **kwargs)


def predict_race(
    model_path: str | Path,
    manifest: pd.DataFrame,
    images: np.ndarray,
    modality: str,
    coordinate: Coordinate,
    test_dataset: str,
    device: str = "auto",
    batch_size: int = 256,
) -> pd.DataFrame:
    """Class probabilities for every test-split image of ``test_dataset`` whose race is a
    class of the task, under the coordinate's perturbation (as in training)."""
    model, meta = load_model(model_path, device="cpu")
    classes = task_classes(modality)
    if meta["n_classes"] != len(classes):
        raise ValueError(f"{model_path} has {meta['n_classes']} outputs, the {modality} task {len(classes)} classes")
    if meta["perturbation"] != coordinate.perturbation:
        raise ValueError(f"{model_path} was trained under {meta['perturbation']!r}, not {coordinate.perturbation!r}")
    rows = task_rows(manifest, modality, ("test",))
    if rows.empty:
        raise ValueError(f"{test_dataset}: no test images of the classes {', '.join(classes)}")
    probs = predict(
        model, images, rows["cache_index"].to_numpy(), transform=perturbation_transform(meta["perturbation"]),
        batch_size=batch_size, device=device, seed=coordinate.seed,
    )
    out = pd.DataFrame(
        {
            "train_dataset": coordinate.train,
            "test_dataset": test_dataset,
            "arch": coordinate.arch,
            "perturbation": coordinate.perturbation,
            "seed": coordinate.seed,
            "image_id": rows["image_id"].to_numpy(),
            "patient_id": rows["patient_id"].to_numpy(),
            "study_id": rows["study_id"].to_numpy(),
            "race": rows["race"].to_numpy(),
            "label": rows["label"].to_numpy(),
        }
    )
    for k, column in enumerate(probability_columns(modality)):
        out[column] = probs[:, k].astype(np.float64)
    return out
