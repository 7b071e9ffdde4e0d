# DICOM ingestion: list the files, ingest them in shards, gather the manifest and cache.


rule list_files:
    input:
        generated_inputs,
    output:
        "results/{dataset}/ingest/files.csv",
    params:
        dataset=listing_options,
        root=dataset_root,
    log:
        "logs/list_files/{dataset}.log",
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/list_files.py"


rule ingest_shard:
    input:
        generated_inputs,
        files="results/{dataset}/ingest/files.csv",
    output:
        rows="results/{dataset}/ingest/shard-{shard}.parquet",
        quarantine="results/{dataset}/ingest/shard-{shard}.quarantine.csv",
        images="results/{dataset}/ingest/shard-{shard}.npy",
    params:
        dataset=ingest_options,
        root=dataset_root,
        salt=config["pseudonym_salt"],
    log:
        "logs/ingest_shard/{dataset}/{shard}.log",
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(120),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/ingest_shard.py"


rule gather_dataset:
    input:
        unpack(ingest_shard_outputs),
        files="results/{dataset}/ingest/files.csv",
    output:
        manifest="results/{dataset}/manifest.parquet",
        quarantine="results/{dataset}/quarantine.csv",
        cache="results/{dataset}/cache/images.npy",
        summary="results/{dataset}/summary.csv",
    params:
        split=dataset_split,
        manifest_schema=f"{workflow.basedir}/workflow/schemas/manifest.schema.yaml",
    log:
        "logs/gather_dataset/{dataset}.log",
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/gather_dataset.py"
