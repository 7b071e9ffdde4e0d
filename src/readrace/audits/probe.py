"""Race in a frozen network's features: a linear probe (the SPLIT test of chexploration, the
paper's A3).

The network is frozen; its penultimate features (the pooled backbone output) are read for
the train and test splits under its eval-time transform; a logistic regression of race is
fitted on the TRAIN split's features (standardised by train statistics) and predicts the
test split, in the common predictions contract, so the shared scoring gives its AUC with
patient-bootstrap intervals. The same probe on the race model's features and on an
untrained network's (same architecture, seeded) are the controls: race in an untrained
network's features is what the images show without any learning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from readrace.data.subsets import Subset
from readrace.evaluation.predictions import Predictions
from readrace.models import build_model, without_classifier
from readrace.tasks import Level, Task, level_names
from readrace.training.batches import BatchReader
from readrace.training.device import prepare_model, resolve_device
from readrace.training.inference import infer_logits, load_model
from readrace.training.rng import seed_everything
from readrace.transforms.sample import perturbation_transform


def encoder_network(encoder: str, model_path: str | None, arch: str, seed: int) -> tuple[nn.Module, str, str]:
    """(network without its classifier, its arch, its eval-time perturbation id).

    ``encoder`` ``untrained``: ``arch`` initialised from ``seed`` (the same draws as the
    first weights of a model trained with that seed); otherwise the model at ``model_path``.
    """
    if encoder == "untrained":
        seed_everything(seed)
        return without_classifier(build_model(arch, 2, None), arch).eval(), arch, "none"
    model, meta = load_model(model_path, device="cpu")
    return without_classifier(model, meta["arch"]).eval(), meta["arch"], meta["perturbation"]


def features(network: nn.Module, images: np.ndarray, rows: np.ndarray, perturbation: str,
             execution: dict[str, Any], seed: int) -> np.ndarray:
    """Penultimate features ``(len(rows), D)`` of cache ``rows``, in their order."""
    device = resolve_device(execution["device"])
    network = prepare_model(network, device)
    with torch.no_grad():
        out = infer_logits(network, BatchReader(images, device), np.asarray(rows, dtype=np.int64),
                           perturbation_transform(perturbation), execution["predict_batch_size"], seed)
    return out.numpy().astype(np.float64)


def fit_probe(train_features: np.ndarray, train_labels: np.ndarray, C: float, max_iter: int) -> Any:
    """Standardise on the train features, then a multinomial logistic regression."""
    scaler = StandardScaler().fit(train_features)
    probe = LogisticRegression(C=C, max_iter=max_iter).fit(scaler.transform(train_features), train_labels)
    return scaler, probe


def run_probe(network: nn.Module, perturbation: str, manifest: pd.DataFrame, images: np.ndarray, *, task: Task,
              keys: dict[str, Any], units: dict[str, str], execution: dict[str, Any], C: float, max_iter: int,
              seed: int) -> tuple[Predictions, pd.DataFrame]:
    """The probe's test predictions, and the 2-D PCA projection of the test features
    (fitted on the train features) with each image's race."""
    train = task.rows(Subset.of("train").select(manifest))
    test = task.rows(Subset.of("test").select(manifest))
    if train["label"].nunique() < 2 or test.empty:
        raise ValueError(f"{keys.get('test_dataset')}: the race probe needs two races in the train split and a test split")
    f_train = features(network, images, train["cache_index"].to_numpy(), perturbation, execution, seed)
    f_test = features(network, images, test["cache_index"].to_numpy(), perturbation, execution, seed)
    scaler, probe = fit_probe(f_train, train["label"].to_numpy(), C, max_iter)
    probs = np.zeros((len(test), task.n_outputs))
    probs[:, probe.classes_] = probe.predict_proba(scaler.transform(f_test))
    table = pd.DataFrame({**keys, "image_id": test["image_id"].to_numpy(), "patient_id": test["patient_id"].to_numpy(),
                          "study_id": test["study_id"].to_numpy(), "label": test["label"].to_numpy()})
    for k, column in enumerate(task.probability_columns):
        table[column] = probs[:, k]
    levels = tuple(Level(name, level.by) for name, level in zip(level_names(task, units), task.levels))
    pca = PCA(n_components=2, random_state=seed).fit(scaler.transform(f_train))
    xy = pca.transform(scaler.transform(f_test))
    projection = pd.DataFrame({"image_id": test["image_id"].to_numpy(), "race": test["race"].to_numpy(),
                               "pc1": xy[:, 0], "pc2": xy[:, 1]})
    return Predictions(table, task, levels, bootstrap_unit=units["patient"], keys=tuple(keys)), projection
