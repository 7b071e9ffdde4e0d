"""Shared fixtures: paths of the repository and its schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG_SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MANIFEST_SCHEMA = REPO / "workflow" / "schemas" / "manifest.schema.yaml"


@pytest.fixture
def default_config() -> dict:
    with open(REPO / "config.yaml") as handle:
        return yaml.safe_load(handle)
