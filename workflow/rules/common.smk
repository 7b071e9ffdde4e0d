# Configuration, wildcard constraints and the input functions every rule uses.
import re

from readrace import paths
from readrace.config import execution_settings, shard_ids, validate_config
from readrace.data.columns import load_schema
from readrace.experiments import expand_experiments, experiment_targets, membership, race_detection
from readrace.ingest.values import value_ranges

validate_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")

DATASETS = config["datasets"]
#: Every model of the matrix, by experiment kind (readrace.experiments.KINDS).
MODELS = expand_experiments(config)
EXECUTION = execution_settings(config)
SCHEMAS = f"{workflow.basedir}/workflow/schemas"
DATASET_PATTERN = "|".join(re.escape(name) for name in DATASETS)
MANIFEST_SCHEMA = f"{SCHEMAS}/manifest.schema.yaml"
# The numbers themselves, not the schema's path, are the shard jobs' params: a changed range
# re-parses the records, a moved checkout does not re-decode every file.
VALUE_RANGES = value_ranges(load_schema(MANIFEST_SCHEMA))


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


def _dataset_keys(*keys):
    """The params function of an ingestion stage: the keys of the dataset's config it reads,
    and the dataset's root. Computed once per dataset: a shard job only looks them up."""
    by_dataset = {name: {**{k: DATASETS[name][k] for k in keys}, "root": _dataset_root(name)} for name in DATASETS}

    def params(wildcards):
        return by_dataset[wildcards.dataset]

    return params


# The part of a dataset's config each ingestion stage reads, so that a change reruns only the
# stages that read it (split fractions, for one, rerun gather and not the decoding).
listing_options = _dataset_keys("adapter", "modality", "shards", "options")
ingest_options = _dataset_keys("adapter", "modality", "preprocess", "options")


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


def race_task(wildcards):
    """What a race-detection model predicts: race, with its train dataset's classes."""
    return race_detection.task(config, wildcards.train).to_dict()


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
