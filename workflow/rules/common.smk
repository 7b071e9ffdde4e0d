# Configuration, wildcard constraints and the input functions every rule uses.
import re

from readrace.config import shard_ids, validate_config

validate_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")

DATASETS = config["datasets"]


wildcard_constraints:
    dataset="|".join(re.escape(name) for name in DATASETS),
    shard=r"\d+",


def dataset_config(wildcards):
    return DATASETS[wildcards.dataset]


def cohort_options(wildcards):
    """What the synthetic generator needs; ingestion-only options (file_list) stay out, so
    that changing them does not regenerate the cohort."""
    dataset = DATASETS[wildcards.dataset]
    options = {k: v for k, v in dataset["options"].items() if k != "file_list"}
    return {"modality": dataset["modality"], "options": options}


def dataset_split(wildcards):
    return DATASETS[wildcards.dataset]["split"]


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
        "quarantine": expand("results/{{dataset}}/ingest/shard-{shard}.quarantine.csv", shard=shards),
        "images": expand("results/{{dataset}}/ingest/shard-{shard}.npy", shard=shards),
    }


def all_targets():
    targets = []
    for name in DATASETS:
        targets += [
            f"results/{name}/manifest.parquet",
            f"results/{name}/quarantine.csv",
            f"results/{name}/cache/images.npy",
        ]
    return targets
