# Configuration, wildcard constraints and the input functions every rule uses.
import re

from readrace import paths
from readrace.config import execution_settings, shard_ids, validate_config
from readrace.data.columns import load_schema
from readrace.confounders.features import feature_set
from readrace.experiments import (
    clinical,
    confounders,
    expand_experiments,
    experiment_targets,
    localisation,
    membership,
    model_of,
    race_detection,
    robustness,
    segmentation,
    perturbation_at_test,
    weights_of,
)
from readrace.transforms.perturbation_ids import needs_masks
from readrace.ingest.values import value_ranges

validate_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")

DATASETS = config["datasets"]
#: Every model of the matrix, by experiment kind (readrace.experiments.KINDS).
MODELS = expand_experiments(config)
EXECUTION = execution_settings(config)
SCHEMAS = f"{workflow.basedir}/workflow/schemas"
DATASET_PATTERN = "|".join(re.escape(name) for name in DATASETS)
# Jobs get the schemas' contents, not their paths, as params: a changed schema reruns the
# jobs it governs, a moved or renamed checkout reruns nothing.
MANIFEST_SCHEMA = load_schema(f"{SCHEMAS}/manifest.schema.yaml")
PREDICTIONS_SCHEMA = load_schema(f"{SCHEMAS}/predictions.schema.yaml")
# The numbers themselves are the shard jobs' params: a changed range re-parses the records
# without the rest of the manifest schema re-decoding every file.
VALUE_RANGES = value_ranges(MANIFEST_SCHEMA)


wildcard_constraints:
    dataset=DATASET_PATTERN,
    train=DATASET_PATTERN,
    test=DATASET_PATTERN,
    arch=r"[a-z0-9_]+",
    perturbation=r"[a-z]+(-[a-z0-9.]+)*",
    seed=r"\d+",
    shard=r"\d+",
    # A model id: a coordinate's path, {kind}/..., several folders deep.
    model=r"[a-z_]+/[^/]+(/[^/]+)*",


def per_attempt(base):
    """A resource that grows with each retry (--retries): base, 2 x base, 3 x base, ...

    A job killed by SLURM for its time or memory limit then comes back with more of both.
    """

    def resource(wildcards, attempt):
        return base * attempt

    return resource


def _dataset_root(name):
    """Where a dataset's files are: generated for the synthetic adapter, else options.root."""
    dataset = DATASETS[name]
    if dataset["adapter"] == "synthetic":
        return f"data/synthetic/{name}"
    return dataset["options"]["root"]


#: Dataset options no ingestion job reads (the truth-mask job does): adding masks to a
#: dataset must not decode it again.
MASK_OPTIONS = ("lung_masks",)


def _dataset_keys(*keys, without=MASK_OPTIONS, when_set=()):
    """The params function of an ingestion stage: the keys of the dataset's config it reads,
    and the dataset's root, without the options in ``without``; the keys in ``when_set`` only
    where they are true (so that a new setting's default changes no dataset's params).
    Computed once per dataset: a shard job only looks them up."""

    def value(name, key):
        if key != "options":
            return DATASETS[name][key]
        return {k: v for k, v in DATASETS[name]["options"].items() if k not in without}

    by_dataset = {
        name: {**{k: value(name, k) for k in keys}, **{k: True for k in when_set if DATASETS[name].get(k)},
               "root": _dataset_root(name)}
        for name in DATASETS
    }

    def params(wildcards):
        return by_dataset[wildcards.dataset]

    return params


# The part of a dataset's config each ingestion stage reads, so that a change reruns only the
# stages that read it (split fractions, for one, rerun gather and not the decoding).
listing_options = _dataset_keys("adapter", "modality", "shards", "options")
ingest_options = _dataset_keys("adapter", "modality", "preprocess", "options", when_set=("mask_set",))


def cohort_options(wildcards):
    """What the synthetic generator needs; ingestion-only options (file_list) stay out, so
    that changing them does not regenerate the cohort."""
    dataset = DATASETS[wildcards.dataset]
    options = {k: v for k, v in dataset["options"].items() if k != "file_list"}
    return {"modality": dataset["modality"], "options": options}


def dataset_split(wildcards):
    return DATASETS[wildcards.dataset]["split"]


def dataset_modality(wildcards):
    return DATASETS[wildcards.dataset]["modality"]


def dataset_mask_set(wildcards):
    return DATASETS[wildcards.dataset]["mask_set"]


def generated_inputs(wildcards):
    """The synthetic cohort is a job of the DAG; real data is outside it."""
    if DATASETS[wildcards.dataset]["adapter"] == "synthetic":
        return [f"data/synthetic/{wildcards.dataset}"]
    return []


def ingest_shard_outputs(wildcards):
    shards = shard_ids(DATASETS[wildcards.dataset])
    return {
        "rows": expand("results/{{dataset}}/ingest/shard-{shard}.parquet", shard=shards),
        "quarantine": expand("private/{{dataset}}/ingest/shard-{shard}.quarantine.csv", shard=shards),
        "images": expand("results/{{dataset}}/ingest/shard-{shard}.npy", shard=shards),
    }


RACE_MODELS = MODELS[race_detection.NAME]
RACE_MODEL_DIR = paths.model_dir(race_detection.RaceDetectionModel.PATH)


def lung_masks(dataset):
    """The lung masks that the masked perturbations (lung, nonlung) read on ``dataset``, on
    its cache grid, row for row: the segmentation stage's (paths.MASKS) where a segmentation
    block segments the dataset, else a synthetic dataset's ground truth (paths.TRUTH_MASKS).
    readrace.experiments.localisation.check names the datasets that have neither."""
    if dataset in segmentation.mask_sources(config):
        return paths.dataset_file(paths.MASKS, dataset)
    return paths.dataset_file(paths.TRUTH_MASKS, dataset)


def training_masks(wildcards):
    """The masks a race model's perturbation reads on its train dataset, by name, or none."""
    if needs_masks(wildcards.perturbation) == "lung":
        return {"masks": lung_masks(wildcards.train)}
    return {}


def prediction_weights(wildcards):
    """model.pt of the model a predictions file is made with (a localisation test-time
    protocol tests the full race model: readrace.experiments.weights_of)."""
    return paths.model_file(weights_of(wildcards.model))


def prediction_masks(wildcards):
    """The masks the perturbation in effect at test time reads on the test dataset, or none."""
    model = model_of(wildcards.model)
    if isinstance(model, localisation.LocalisationModel):
        return localisation.mask_input(wildcards.model, wildcards.test, lung_masks)
    perturbation = model.columns.get("perturbation", "none")
    return {"masks": lung_masks(wildcards.test)} if needs_masks(perturbation) == "lung" else {}


LOCALISATION_MODELS = MODELS[localisation.NAME]
SALIENCY_DIR = paths.SALIENCY_DIR.format(model=race_detection.RaceDetectionModel.PATH.format(
    train="{train}", arch="{arch}", perturbation="none", seed="{seed}"), test="{test}")


def saliency_lung_masks(wildcards):
    """The test dataset's lung masks, where its modality has them (shares inside the lungs)."""
    if DATASETS[wildcards.test]["modality"] in localisation.MASKED_MODALITIES:
        return {"lung": lung_masks(wildcards.test)}
    return {}


def race_task(wildcards):
    """What a race-detection model predicts: race, with its train dataset's classes."""
    return race_detection.task(config, wildcards.train).to_dict()


def tabular_inputs(wildcards):
    """A tabular model reads its dataset's manifest; a histogram model also its cache."""
    inputs = {"manifest": paths.dataset_file(paths.MANIFEST, wildcards.train),
              "descriptor": paths.dataset_file(paths.DESCRIPTOR, wildcards.train)}
    if feature_set(wildcards.features).needs_images:
        inputs["cache"] = paths.dataset_file(paths.CACHE, wildcards.train)
    return inputs


def tabular_settings(wildcards):
    """What determines a tabular model beyond its id: its estimator's settings, the search's
    folds, and the label policy only where the features hold finding labels."""
    settings = config["confounders"]
    features = feature_set(wildcards.features)
    return {
        "estimator": settings["estimators"][wildcards.estimator],
        "cv_folds": settings["cv_folds"],
        "labels": settings["labels"] if features.findings else None,
    }


def retrain_sampler(wildcards):
    """The equal-distribution sampler's settings, for the models it resamples only."""
    return config["confounders"]["sampler"] if wildcards.subset == "equal" else None


def retrain_manufacturer(wildcards):
    """The manufacturer a retrain trains on, as its manifest names it (None: not by manufacturer)."""
    return confounders.manufacturer_of(config, wildcards.train, wildcards.subset)


def stratify_settings(wildcards):
    """The strata of a stratify job: the config's, or the manufacturers for a model of one."""
    return confounders.strata_settings(config, wildcards.model)


def all_targets():
    targets = [paths.CONFIG_RECORD]
    for name in DATASETS:
        targets += [
            paths.dataset_file(paths.MANIFEST, name),
            paths.dataset_file(paths.QUARANTINE, name),
            paths.dataset_file(paths.CACHE, name),
            paths.dataset_file(paths.SUMMARY, name),
            paths.dataset_file(paths.DESCRIPTOR, name),
        ]
    return targets + experiment_targets(config, MODELS)


MEMBERSHIP_MODELS = MODELS[membership.NAME]
MEMBERSHIP_AUDITS = membership.audit_settings(config)
MEMBERSHIP_AUDIT = membership.MembershipAudit.PATH
MEMBERSHIP_MODEL_DIR = paths.model_dir(membership.MembershipModel.PATH)


def membership_settings(wildcards):
    """The block settings of the audit a job belongs to."""
    audit = membership.MembershipAudit(wildcards.train, wildcards.arch, wildcards.privacy,
                                       int(wildcards.n_models), int(wildcards.seed))
    return MEMBERSHIP_AUDITS[audit.path]


def membership_training(wildcards):
    return membership_settings(wildcards)["training"]


def membership_dp(wildcards):
    return membership_settings(wildcards)["dp"]


def membership_pool(wildcards):
    return membership_settings(wildcards)["pool"]


def membership_views(wildcards):
    return membership_settings(wildcards)["views"]


def membership_attack_settings(wildcards):
    settings = membership_settings(wildcards)
    return {k: settings[k] for k in ("top_fraction", "exposed_auc", "age_bands", "control_seed")}


def membership_task(wildcards):
    return membership.task(config, wildcards.train).to_dict()


def membership_shadow_models(wildcards):
    """The model.pt of every shadow model of the audit, in shadow order."""
    audit = membership.MembershipAudit(wildcards.train, wildcards.arch, wildcards.privacy,
                                       int(wildcards.n_models), int(wildcards.seed))
    return [paths.model_file(model.path) for model in audit.shadows()]


# Kind segmentation: what its rules (workflow/rules/segmentation.smk) read.
SEGMENTED = segmentation.mask_sources(config)


def mask_source(wildcards):
    return SEGMENTED[wildcards.dataset]


def segmentation_train_inputs(wildcards):
    names = wildcards.sources.split(segmentation.JOIN)
    return {
        "manifests": [paths.dataset_file(paths.MANIFEST, name) for name in names],
        "caches": [paths.dataset_file(paths.CACHE, name) for name in names],
        "descriptors": [paths.dataset_file(paths.DESCRIPTOR, name) for name in names],
        "truths": [paths.dataset_file(paths.TRUTH_MASKS, name) for name in names],
    }


def segmentation_train_settings(wildcards):
    """The U-Net settings of the block whose model this is (one block per model id)."""
    model = segmentation.SegmentationModel(wildcards.sources, segmentation.UNET, int(wildcards.seed))
    for source in SEGMENTED.values():
        if source.model == model:
            return source.settings
    raise ValueError(f"no segmentation block trains {model.path}")


def lung_mask_inputs(wildcards):
    source = mask_source(wildcards)
    inputs = {"manifest": paths.dataset_file(paths.MANIFEST, wildcards.dataset),
              "cache": paths.dataset_file(paths.CACHE, wildcards.dataset)}
    if source.model.method == segmentation.UNET:
        inputs["model"] = paths.model_file(source.model.path)
    if source.model.method == segmentation.LUNGMASK:
        inputs["weights"] = source.settings["weights"]  # new weights remake the masks
    return inputs


def lung_mask_params(wildcards):
    source = mask_source(wildcards)
    return {"method": source.model.method, "settings": source.settings,
            "window": DATASETS[wildcards.dataset]["preprocess"].get("window")}


def lung_mask_gpus(wildcards):
    """The networks (U-Net, lungmask) run on the training device; the HU pipeline needs no GPU."""
    return EXECUTION["gpus"] if mask_source(wildcards).model.method != segmentation.HU else 0


truth_mask_options = _dataset_keys("adapter", "modality", "options", without=())


# Kind clinical: what its rules (workflow/rules/clinical.smk) read.
CLINICAL_MODELS = MODELS[clinical.NAME]
CLINICAL_ID = clinical.ClinicalModel.PATH
CLINICAL_MODEL_DIR = paths.model_dir(CLINICAL_ID)


def _clinical_model(wildcards):
    return clinical.ClinicalModel(wildcards.train, wildcards.arch, wildcards.perturbation, int(wildcards.seed))


def clinical_task(wildcards):
    """What a clinical model predicts: its block's findings under its uncertain policy."""
    return clinical.task(config, _clinical_model(wildcards)).to_dict()


def clinical_training(wildcards):
    """A clinical model's hyperparameters: its block's training over the config's."""
    return clinical.training(config, _clinical_model(wildcards))


def clinical_setting(key):
    """The params function of one key of the model's block (audit, probe)."""

    def params(wildcards):
        return clinical.block_of(config, _clinical_model(wildcards))[key]

    return params


def clinical_model_id(wildcards):
    return _clinical_model(wildcards).path


def probe_encoder_model(wildcards):
    """The trained network the probe reads (none for the untrained control)."""
    model = _clinical_model(wildcards)
    ids = {"clinical": model.path, "race": model.race_model}
    return {"model": paths.model_file(ids[wildcards.encoder])} if wildcards.encoder in ids else {}


# Kind robustness: what its rules (workflow/rules/robustness.smk) read.
ROBUSTNESS_AUDITS = MODELS[robustness.NAME]
ROBUSTNESS_ID = robustness.RobustnessAudit.PATH


def _robustness_audit(wildcards):
    return robustness.RobustnessAudit(wildcards.train, wildcards.arch, int(wildcards.seed))


def robustness_models(wildcards):
    audit = _robustness_audit(wildcards)
    return {"race_model": paths.model_file(audit.race_model), "clinical_model": paths.model_file(audit.clinical_model.path)}


def robustness_settings(wildcards):
    block = robustness.block_of(config, _robustness_audit(wildcards))
    return {key: block[key] for key in ("attacks", "epsilons", "pgd_steps", "pgd_alpha_ratio", "finding", "seed")}
