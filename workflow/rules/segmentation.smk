# Kind segmentation (readrace.experiments.segmentation): lung masks on the cache grid.
#
# truth_masks carries a dataset's own ground truth onto its cache grid (from the private map
# of its source files; only the uint8 array reaches results/). train_segmentation trains the
# radiograph U-Net, segmentation/{sources}/unet/seed{seed} ({sources}: its train datasets
# joined by "+"). lung_masks writes results/{dataset}/cache/masks.npy, by the U-Net or by
# Hounsfield units: the interface the localisation experiments read. Then the quality table
# with patient-bootstrap intervals (and per-image quality), the implausible masks and the
# overlay figure.


rule truth_masks:
    input:
        generated_inputs,
        sources="private/{dataset}/sources.csv",
        cache="results/{dataset}/cache/images.npy",
    output:
        paths.TRUTH_MASKS,
    params:
        dataset=truth_mask_options,
    log:
        "logs/truth_masks/{dataset}.log",
        private="private/logs/truth_masks/{dataset}.log",
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(60),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/truth_masks.py"


rule train_segmentation:
    input:
        unpack(segmentation_train_inputs),
    output:
        model=f"results/models/segmentation/{{sources}}/unet/seed{{seed}}/{paths.MODEL_FILE}",
        log_csv=f"results/models/segmentation/{{sources}}/unet/seed{{seed}}/{paths.TRAIN_LOG_FILE}",
    wildcard_constraints:
        sources=r"[^/]+",
    params:
        unet=segmentation_train_settings,
    log:
        "logs/train_segmentation/{sources}/unet/seed{seed}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(16000),
        runtime=per_attempt(240),
        gpu=EXECUTION["gpus"],
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/train_segmentation.py"


rule lung_masks:
    input:
        unpack(lung_mask_inputs),
    output:
        paths.MASKS,
    params:
        segmentation=lung_mask_params,
    log:
        "logs/lung_masks/{dataset}.log",
    threads: EXECUTION["threads"]
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(120),
        gpu=lung_mask_gpus,
    conda:
        "../../envs/gpu.yaml"
    script:
        "../scripts/lung_masks.py"


# One job for every dataset: its MONAI import costs more than the scoring of a small dataset.
rule segmentation_table:
    input:
        masks=[paths.dataset_file(paths.MASKS, name) for name in SEGMENTED],
        manifests=[paths.dataset_file(paths.MANIFEST, name) for name in SEGMENTED],
        truths=[paths.dataset_file(paths.TRUTH_MASKS, name) for name in SEGMENTED if SEGMENTED[name].truth],
    output:
        table=report(paths.SEGMENTATION_TABLE, caption="../report/segmentation.rst", category="Segmentation"),
        implausible=report(
            paths.SEGMENTATION_IMPLAUSIBLE, caption="../report/segmentation_implausible.rst", category="Segmentation"
        ),
        quality=paths.SEGMENTATION_QUALITY,
    params:
        datasets=list(SEGMENTED),
        sources={
            name: {"method": s.model.method, "held_out": s.held_out, "truth": s.truth, "quality": s.quality,
                   "modality": DATASETS[name]["modality"]}
            for name, s in SEGMENTED.items()
        },
        evaluation=config["evaluation"],
    log:
        "logs/segmentation_table.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/segmentation_table.py"


rule segmentation_figure:
    input:
        masks=[paths.dataset_file(paths.MASKS, name) for name in SEGMENTED],
        caches=[paths.dataset_file(paths.CACHE, name) for name in SEGMENTED],
        manifests=[paths.dataset_file(paths.MANIFEST, name) for name in SEGMENTED],
    output:
        report(paths.SEGMENTATION_FIGURE, caption="../report/segmentation_masks.rst", category="Segmentation"),
    params:
        datasets=list(SEGMENTED),
        n_samples=4,
        seed=0,
    log:
        "logs/segmentation_figure.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/segmentation_figure.py"
