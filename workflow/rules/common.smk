# Configuration, wildcard constraints and the input functions every rule uses.
import re

from readrace.config import shard_ids, validate_config
from readrace.data.manifest import load_manifest_schema
from readrace.experiments import Coordinate, evaluation_datasets, expand_experiments
from readrace.ingest.values import value_ranges

validate_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")

DATASETS = config["datasets"]
COORDINATES = expand_experiments(config)
DATASET_PATTERN = "|".join(re.escape(name) for name in DATASETS)
MANIFEST_SCHEMA = f"{workflow.basedir}/workflow/schemas/manifest.schema.yaml"
# The numbers themselves, not the schema's path, are the shard jobs' params: a changed range
# re-parses the records, a moved checkout does not re-decode every file.
VALUE_RANGES = value_ranges(load_manifest_schema(MANIFEST_SCHEMA))


wildcard_constraints:
    dataset=DATASET_PATTERN,
    train=DATASET_PATTERN,
    test=DATASET_PATTERN,
    arch=r"[a-z0-9_]+",
    perturbation=r"[a-z]+(-[a-z0-9.]+)*",
    seed=r"\d+",
    shard=r"\d+",


def per_attempt(base):
    """A resource that grows with each retry (--retries): base, 2 x base, 3 x base, ...

    A job killed by SLURM for its time or memory limit then comes back with more of both.
    """

    def resource(wildcards, attempt):
        return base * attempt

    return resource


#: Settings of the training block that say how a job runs, not what it computes: they are
#: kept out of the params, so that changing them reruns nothing.
EXECUTION_ONLY = ("threads", "gpus")


def training_params(wildcards):
    return {k: v for k, v in config["training"].items() if k not in EXECUTION_ONLY}


def _dataset_keys(*keys):
    def params(wildcards):
        return {k: DATASETS[wildcards.dataset][k] for k in keys}

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


def dataset_root(wildcards):
    """Where a dataset's files are: generated for the synthetic adapter, else options.root."""
    dataset = DATASETS[wildcards.dataset]
    if dataset["adapter"] == "synthetic":
        return f"data/synthetic/{wildcards.dataset}"
    return dataset["options"]["root"]


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


def coordinate(wildcards):
    return Coordinate(wildcards.train, wildcards.arch, wildcards.perturbation, int(wildcards.seed))


def train_modality(wildcards):
    return DATASETS[wildcards.train]["modality"]


def score_files():
    """One score file per (model, test dataset) of the experiment matrix."""
    return [
        f"results/scores/{c.path}/{test}.csv"
        for c in COORDINATES
        for test in evaluation_datasets(config, c.train)
    ]


def filter_coordinates():
    """Models of the frequency-filter experiments (the paper's Figures 1 and 2)."""
    return [c for c in COORDINATES if c.perturbation.startswith(("lpf-", "hpf-"))]


def filter_figure_inputs(wildcards):
    """The table, and the cache of the first filtered dataset for the sample images."""
    dataset = filter_coordinates()[0].train
    return {
        "table": "results/tables/race_detection.csv",
        "manifest": f"results/{dataset}/manifest.parquet",
        "cache": f"results/{dataset}/cache/images.npy",
    }


def filter_sample_ids(wildcards):
    """The filter ids to show, low-pass then high-pass, by diameter."""
    ids = {c.perturbation for c in filter_coordinates()}
    return sorted(ids, key=lambda pid: (not pid.startswith("lpf"), int(pid.split("-d")[1])))


def all_targets():
    targets = ["results/config.yaml"]
    for name in DATASETS:
        targets += [
            f"results/{name}/manifest.parquet",
            f"results/{name}/quarantine.csv",
            f"results/{name}/cache/images.npy",
            f"results/{name}/summary.csv",
            f"results/{name}/dataset.json",
        ]
    if COORDINATES:
        targets += ["results/tables/race_detection.csv", "results/tables/race_detection.md"]
    if filter_coordinates():
        targets += ["results/figures/filter_auc.png", "results/figures/filter_samples.png"]
    return targets
