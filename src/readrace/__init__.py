"""readrace: measure how much medical images reveal self-reported race, and where.

The library behind the Snakemake workflow: every stage's logic lives here, importable and
unit-tested; the workflow's scripts only read the ``snakemake`` object and call it.
"""

__version__ = "0.1.0"
