# Figures of the frequency-filter experiments (the paper's Figures 1 and 2), and the
# configuration of the run, for `snakemake --report`.

from readrace.provenance import redact


rule filter_figures:
    input:
        unpack(filter_figure_inputs),
    output:
        auc=report(
            "results/figures/filter_auc.png",
            caption="../report/filter_auc.rst",
            category="Frequency filters",
        ),
        samples=report(
            "results/figures/filter_samples.png",
            caption="../report/filter_samples.rst",
            category="Frequency filters",
        ),
    params:
        perturbations=filter_sample_ids,
        n_samples=3,
    log:
        "logs/filter_figures.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/filter_figures.py"


rule workflow_config:
    output:
        report("results/config.yaml", caption="../report/config.rst", category="Configuration"),
    params:
        config=redact(config),
    log:
        "logs/workflow_config.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/workflow_config.py"
