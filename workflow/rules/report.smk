# The configuration of the run, for `snakemake --report`.

from readrace.provenance import redact


rule workflow_config:
    output:
        report(paths.CONFIG_RECORD, caption="../report/config.rst", category="Configuration"),
    params:
        config=redact(config),
    log:
        "logs/workflow_config.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/workflow_config.py"
