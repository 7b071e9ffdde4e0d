# readrace: how much do medical images reveal self-reported race, and where?
# Run from the repository root: `snakemake --cores 2` (laptop) or `snakemake --profile slurm`.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another matrix: Snakemake would otherwise
# merge the two, and a run on configs/paper.yaml would carry the synthetic datasets along.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/evaluate.smk"
# One rule file per experiment kind (readrace.experiments.KINDS).
include: "workflow/rules/race_detection.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/localisation.smk"
include: "workflow/rules/confounders.smk"
include: "workflow/rules/clinical.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/membership.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
