"""Shared fixtures: paths of the repository and its schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG_SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MANIFEST_SCHEMA = REPO / "workflow" / "schemas" / "manifest.schema.yaml"
PREDICTIONS_SCHEMA = REPO / "workflow" / "schemas" / "predictions.schema.yaml"


@pytest.fixture
def default_config() -> dict:
    with open(REPO / "config.yaml") as handle:
        return yaml.safe_load(handle)


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None, cwd: Path | None = None,
                  timeout: int = 900) -> subprocess.CompletedProcess:
    """The repository's Snakefile run in ``workdir`` (its results, logs and .snakemake/ go
    there, never into the checkout), under ``configfile`` (default ``workdir/config.yaml``)."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(configfile or workdir / "config.yaml"), *args,
    ]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
