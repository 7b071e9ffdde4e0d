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
# Lung masks on the cache grid, uint8, row for row with CACHE (readrace.segmentation.masks):
# the dataset's own ground truth (MASK_MISSING rows where it has none), and the masks the
# segmentation stage computed (0/1 everywhere), which the localisation experiments read.
TRUTH_MASKS = "results/{dataset}/cache/truth_masks.npy"
MASKS = "results/{dataset}/cache/masks.npy"

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

# Localisation (lung / non-lung, 3x3 grid, saliency). Saliency files of one full model on one
# test dataset: maps.npz (mean Grad-CAM and mean image per class), shares.csv (share of
# saliency per region and class), masks.npy (each test image's most salient region, uint8,
# row for row with the test cache).
LOCALISATION_TABLE = "results/tables/localisation.csv"
LOCALISATION_GRID_FIGURE = "results/figures/localisation_grid.png"
LOCALISATION_LUNG_FIGURE = "results/figures/localisation_lung.png"
SALIENCY_TABLE = "results/tables/saliency.csv"
SALIENCY_FIGURE = "results/figures/saliency.png"
SALIENCY_DIR = "results/saliency/{model}/{test}"
SALIENCY_FILES = {"maps": "maps.npz", "shares": "shares.csv", "masks": "masks.npy"}

# Segmentation (lung masks): quality against ground truth, implausible masks, overlays.
SEGMENTATION_QUALITY = "results/segmentation/quality.csv"  # per image: area, lungs, Dice, HD95
SEGMENTATION_TABLE = "results/tables/segmentation.csv"
SEGMENTATION_IMPLAUSIBLE = "results/tables/segmentation_implausible.csv"
SEGMENTATION_FIGURE = "results/figures/segmentation_masks.png"

# Confounders (Table 2): stratified scores of an image model, the long table, its Markdown
# and the forest plot; beside a tabular model its search, beside a retrain its sampler.
STRATA = "results/confounders/strata/{model}/{test}.csv"
SEARCH_FILE = "search.csv"
SAMPLER_FILE = "sampler.csv"
CONFOUNDERS_TABLE = "results/tables/confounders.csv"
CONFOUNDERS_MARKDOWN = "results/tables/confounders.md"
CONFOUNDERS_FOREST_FIGURE = "results/figures/confounders_strata.png"
# Coverage of the patient variables (BMI, breast density) of each confounders dataset, by source.
CONFOUNDER_VARIABLES = "results/tables/confounder_variables.csv"

# Clinical models: internal validation per label, subgroup audit, race probe.
CLINICAL_TABLE = "results/tables/clinical.csv"
SUBGROUP_AUDIT_TABLE = "results/tables/subgroup_audit.csv"
SUBGROUP_GAPS_FIGURE = "results/figures/subgroup_gaps.png"
RACE_PROBE_TABLE = "results/tables/race_probe.csv"
RACE_PROBE_FIGURE = "results/figures/race_probe_pca.png"

# Adversarial robustness by subgroup.
ROBUSTNESS_TABLE = "results/tables/robustness.csv"
ROBUSTNESS_MIN_EPS_TABLE = "results/tables/robustness_min_eps.csv"
ROBUSTNESS_FIGURE = "results/figures/robustness_auc.png"

# Membership privacy audit (per audit: results/membership/{train}/{arch}/{privacy}/n{N}/seed{S}/).
MEMBERSHIP_TABLE = "results/tables/membership.csv"
MEMBERSHIP_SUMMARY = "results/tables/membership_summary.md"
MEMBERSHIP_SURVIVAL_FIGURE = "results/figures/membership_survival.png"
MEMBERSHIP_DISPARITY_FIGURE = "results/figures/membership_disparity.png"
MEMBERSHIP_DP_FIGURE = "results/figures/membership_dp.png"
MEMBERSHIP_CAPACITY_FIGURE = "results/figures/membership_capacity.png"

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


def saliency_file(what: str, model: str, test: str) -> str:
    """``what`` (maps, shares, masks) of the saliency of ``model`` on ``test``."""
    return f"{SALIENCY_DIR.format(model=model, test=test)}/{SALIENCY_FILES[what]}"


def strata(model: str, test: str) -> str:
    return STRATA.format(model=model, test=test)
