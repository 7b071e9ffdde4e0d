"""Where every output of the workflow lives, spelled once.

Paths are relative to the workflow's working directory (the repository root, or
``--directory``). A model is known by its id, the path of its coordinate
(``race_detection/{train}/{arch}/{perturbation}/seed{seed}``, see
:mod:`readrace.experiments`); its directory, predictions and scores follow from it. The
rules use the patterns (with Snakemake wildcards), the library and the tests the functions.

``private/`` holds what must never be shared: the map from pseudonymous ids back to source
files. Nothing under ``results/`` or ``logs/`` names a source file.
"""

from __future__ import annotations

RESULTS = "results"
LOGS = "logs"

# Per dataset.
MANIFEST = "results/{dataset}/manifest.parquet"
CACHE = "results/{dataset}/cache/images.npy"
DESCRIPTOR = "results/{dataset}/dataset.json"
QUARANTINE = "results/{dataset}/quarantine.csv"
SUMMARY = "results/{dataset}/summary.csv"

# Per model: {model} is a model id (a coordinate's path); it spans several folders.
MODEL_DIR = "results/models/{model}"
MODEL_FILE = "model.pt"
TRAIN_LOG_FILE = "train_log.csv"
PREDICTIONS = "results/predictions/{model}/{test}.parquet"
SCORES = "results/scores/{model}/{test}.csv"

# Race detection (Table 3, Figures 1 and 2).
RACE_DETECTION_TABLE = "results/tables/race_detection.csv"
RACE_DETECTION_MARKDOWN = "results/tables/race_detection.md"
FILTER_AUC_FIGURE = "results/figures/filter_auc.png"
FILTER_SAMPLES_FIGURE = "results/figures/filter_samples.png"

# Membership privacy audit (per audit: results/membership/{train}/{arch}/{privacy}/n{N}/seed{S}/).
MEMBERSHIP_TABLE = "results/tables/membership.csv"
MEMBERSHIP_SUMMARY = "results/tables/membership_summary.md"
MEMBERSHIP_SURVIVAL_FIGURE = "results/figures/membership_survival.png"
MEMBERSHIP_DISPARITY_FIGURE = "results/figures/membership_disparity.png"
MEMBERSHIP_DP_FIGURE = "results/figures/membership_dp.png"

CONFIG_RECORD = "results/config.yaml"


def dataset_file(pattern: str, dataset: str) -> str:
    return pattern.format(dataset=dataset)


def model_dir(model: str) -> str:
    return MODEL_DIR.format(model=model)


def model_file(model: str) -> str:
    return f"{model_dir(model)}/{MODEL_FILE}"


def predictions(model: str, test: str) -> str:
    return PREDICTIONS.format(model=model, test=test)


def scores(model: str, test: str) -> str:
    return SCORES.format(model=model, test=test)
