# DICOM ingestion: list the files, ingest them in shards, gather the manifest and cache.
#
# Source paths and library messages carry identifiers (MRNs, UIDs, subject ids), so results/
# and logs/ name files by pseudonym (file_id) only. The map back to the source files, the
# private detail of every quarantine reason and the full message of a failed job live in
# private/ (private/{dataset}/ and private/logs/{rule}/), which must never be shared.


rule list_files:
    input:
        generated_inputs,
    output:
        files="results/{dataset}/ingest/files.csv",
        private="private/{dataset}/files.csv",
        units="results/{dataset}/ingest/units.json",
    params:
        dataset=listing_options,
        salt=config["pseudonym_salt"],
    log:
        "logs/list_files/{dataset}.log",
        private="private/logs/list_files/{dataset}.log",
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/list_files.py"


# The shards need not name the synthetic cohort: their listing does.
rule ingest_shard:
    input:
        files="private/{dataset}/files.csv",
    output:
        rows="results/{dataset}/ingest/shard-{shard}.parquet",
        quarantine="private/{dataset}/ingest/shard-{shard}.quarantine.csv",
        images="results/{dataset}/ingest/shard-{shard}.npy",
    params:
        dataset=ingest_options,
        salt=config["pseudonym_salt"],
        value_ranges=VALUE_RANGES,
    log:
        "logs/ingest_shard/{dataset}/{shard}.log",
        private="private/logs/ingest_shard/{dataset}/{shard}.log",
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(120),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/ingest_shard.py"


# The gather job reads the shards through their index: see readrace.ingest.gather.write_shard_index.
rule index_shards:
    input:
        unpack(ingest_shard_outputs),
    output:
        "results/{dataset}/ingest/shards.csv",
    log:
        "logs/index_shards/{dataset}.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/index_shards.py"


rule gather_dataset:
    input:
        shards="results/{dataset}/ingest/shards.csv",
        files="private/{dataset}/files.csv",
        units="results/{dataset}/ingest/units.json",
    output:
        manifest="results/{dataset}/manifest.parquet",
        quarantine="results/{dataset}/quarantine.csv",
        cache="results/{dataset}/cache/images.npy",
        summary="results/{dataset}/summary.csv",
        descriptor="results/{dataset}/dataset.json",
        sources="private/{dataset}/sources.csv",
        private_quarantine="private/{dataset}/quarantine.csv",
    params:
        split=dataset_split,
        manifest_schema=MANIFEST_SCHEMA,
        modality=dataset_modality,
        mask_set=dataset_mask_set,
    log:
        "logs/gather_dataset/{dataset}.log",
        private="private/logs/gather_dataset/{dataset}.log",
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/gather_dataset.py"
