"""Tabular models of race: a scikit-learn Pipeline per (feature set, estimator), tuned by a
grid search grouped by patient on the training split, scored in the common predictions
contract.

Splits are the images' own patient-level splits (the manifest's ``split`` column), so a
tabular model and an image model of one dataset are tested on the same patients; the
search's folds never split a patient (:class:`~sklearn.model_selection.StratifiedGroupKFold`).
The paper's code split the first 70 % of rows from the rest, by image, unshuffled.

Fitting unit: the study for patient and study variables (its images repeat the same
values, and would weigh a patient by its number of images), the image for histograms.
Predictions are written for every test image of the task, the study's values joined to
each of its images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

from readrace.confounders.features import FeatureSet, LabelPolicy, feature_table
from readrace.data.subsets import Subset
from readrace.evaluation.predictions import Predictions
from readrace.labels import FINDINGS
from readrace.tasks import Level, Task, level_names

ESTIMATORS: tuple[str, ...] = ("logistic", "forest", "xgboost")

_SKLEARN = tuple(int(part) for part in sklearn.__version__.split(".")[:2])

TRAIN = Subset.of("train")
TEST = Subset.of("test")


def _estimator(name: str, settings: dict[str, Any], seed: int) -> Any:
    if name == "logistic":
        # L1 as in the paper; saga handles it for several classes. scikit-learn 1.8 spells
        # the penalty by l1_ratio alone (and deprecates penalty=).
        l1 = {"l1_ratio": 1.0} if _SKLEARN >= (1, 8) else {"penalty": "l1"}
        return LogisticRegression(**l1, solver="saga", max_iter=settings.get("max_iter", 2000), random_state=seed)
    if name == "forest":
        return RandomForestClassifier(n_estimators=settings["n_estimators"], random_state=seed, n_jobs=1)
    if name == "xgboost":
        return XGBClassifier(n_estimators=settings["n_estimators"], learning_rate=settings.get("learning_rate", 0.1),
                             random_state=seed, n_jobs=1, tree_method="hist", verbosity=0)
    raise ValueError(f"unknown tabular estimator {name!r}; expected one of {', '.join(ESTIMATORS)}")


def build_pipeline(features: FeatureSet, estimator: str, settings: dict[str, Any], seed: int) -> Pipeline:
    """Imputation, one-hot encoding and scaling of ``features``, then the estimator."""
    if features.needs_images:
        numeric = [f"h{k:03d}" for k in range(features.histogram_bins)]
        categorical: list[str] = []
    else:
        numeric = list(features.numeric)
        categorical = list(features.categorical) + (list(FINDINGS) if features.findings else [])
    steps = []
    if numeric:
        steps.append(("numeric", Pipeline([
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]), numeric))
    if categorical:
        steps.append(("categorical", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]), categorical))
    return Pipeline([("features", ColumnTransformer(steps)), ("model", _estimator(estimator, settings, seed))])


def _grid(estimator: str, settings: dict[str, Any]) -> dict[str, list[Any]]:
    return {f"model__{key}": list(values) for key, values in settings.get("grid", {}).items()}


@dataclass
class TabularResult:
    """A fitted search: its predictions on the test subset, and one row per grid point."""

    predictions: Predictions
    search: pd.DataFrame
    best_params: dict[str, Any]


def _fitting_rows(rows: pd.DataFrame, features: FeatureSet) -> pd.DataFrame:
    return rows if features.needs_images else rows.drop_duplicates("study_id")


def fit_tabular(
    manifest: pd.DataFrame,
    *,
    task: Task,
    features: FeatureSet,
    estimator: str,
    settings: dict[str, Any],
    policy: LabelPolicy,
    seed: int,
    cv_folds: int,
    keys: dict[str, Any],
    units: dict[str, str],
    images: np.ndarray | None = None,
    train: Subset = TRAIN,
    test: Subset = TEST,
) -> TabularResult:
    """Tune and fit one tabular model on ``train``, predict every image of ``test``.

    ``settings`` are the estimator's block of ``confounders.estimators`` (``grid``: parameter
    -> values searched; the rest fixed). ``keys`` and ``units`` as for image models
    (:func:`readrace.training.image_models.predict_image_model`).
    """
    train_rows = _fitting_rows(task.rows(train.select(manifest)), features)
    test_rows = task.rows(test.select(manifest))
    where = keys.get("model", features.name)
    present = train_rows["label"].nunique()
    if present < task.n_outputs:
        raise ValueError(
            f"{where}: the training split holds {present} of the {task.n_outputs} classes "
            f"({', '.join(task.classes)}); every class needs training rows"
        )
    if test_rows.empty:
        raise ValueError(f"{where}: no test images of the classes {', '.join(task.classes)}")
    x_train = feature_table(train_rows, features, policy, images)
    x_test = feature_table(test_rows, features, policy, images)
    y_train = train_rows["label"].to_numpy()
    groups = train_rows["patient_id"].to_numpy()
    smallest = int(pd.Series(y_train).groupby(groups).first().value_counts().min())
    folds = max(2, min(cv_folds, smallest))
    search = GridSearchCV(
        build_pipeline(features, estimator, settings, seed), _grid(estimator, settings),
        cv=StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed),
        scoring="neg_log_loss", n_jobs=1, refit=True, error_score="raise",
    )
    search.fit(x_train, y_train, groups=groups)
    probs = search.predict_proba(x_test)
    # Columns follow the fitted classes, which are 0..K-1 since every class is present.
    table = pd.DataFrame({**keys, "image_id": test_rows["image_id"].to_numpy(),
                          "patient_id": test_rows["patient_id"].to_numpy(),
                          "study_id": test_rows["study_id"].to_numpy(), "label": test_rows["label"].to_numpy()})
    for k, column in enumerate(task.probability_columns):
        table[column] = probs[:, k].astype(np.float64)
    levels = tuple(Level(name, level.by) for name, level in zip(level_names(task, units), task.levels))
    results = pd.DataFrame(search.cv_results_)
    columns = [c for c in results if c.startswith("param_")] + ["mean_test_score", "std_test_score", "rank_test_score"]
    best = {key.removeprefix("model__"): _plain(value) for key, value in search.best_params_.items()}
    return TabularResult(
        predictions=Predictions(table, task, levels, bootstrap_unit=units["patient"], keys=tuple(keys)),
        search=results[columns].assign(folds=folds, fitted_units=len(train_rows)),
        best_params=best,
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
