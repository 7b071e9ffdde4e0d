# Figures: the frequency-filter experiments (the paper's Figures 1 and 2).


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
    conda:
        "../../envs/readrace.yaml"
    script:
        "../scripts/filter_figures.py"
