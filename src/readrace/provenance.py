"""The configuration that produced a set of results, as written beside them and into the report."""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

#: Config keys whose values are secrets: anyone who knows the pseudonym salt can test a
#: guessed patient id against the pseudonymous ids in results/, so it never leaves the config.
SECRET_KEYS = ("pseudonym_salt",)
REDACTED = "<redacted>"


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``config`` with every secret replaced by ``REDACTED``."""
    public = copy.deepcopy(config)
    for key in SECRET_KEYS:
        if key in public:
            public[key] = REDACTED
    return public


def package_version() -> str:
    try:
        return version("readrace")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def write_config(config: dict[str, Any], path: str | Path) -> None:
    """Write the (already redacted, validated) config as YAML, headed by the readrace version."""
    header = f"# The configuration of these results, validated, with defaults filled in.\n# readrace {package_version()}\n"
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    Path(path).write_text(header + body)
