"""Loading and validating the workflow configuration.

The Snakefile calls :func:`validate_config` while it is parsed, so that a typo in
``config.yaml`` fails before any job runs, with a message that names the offending key.
Defaults declared in the JSON schema are filled in, so every later stage can rely on them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

# The id grammar, not readrace.transforms.perturbations: that one imports torch, and the Snakefile calls
# validate_config at every parse (dry runs included).
from readrace.transforms.perturbation_ids import parse_perturbation_id

#: Tolerance on the sum of the split fractions.
_SPLIT_TOLERANCE = 1e-6


class ConfigError(ValueError):
    """The configuration does not match its schema; the message names the key."""


def _with_defaults(validator_class: type) -> type:
    """A validator class that fills in ``default`` values while it validates.

    The pattern from the jsonschema FAQ: defaults are set before the properties are
    validated, so a default is itself checked against its schema.
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def load_schema(path: str | Path) -> dict:
    # The C loader, where PyYAML has one, reads the schema several times faster; the schema
    # is read at every Snakefile parse.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as handle:
        return yaml.load(handle, Loader=loader)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    """One line per error: the full dotted key, then what is wrong with it."""
    where = _key_path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - allowed)
        prefix = "" if where == "<top level>" else where + "."
        known = ", ".join(sorted(allowed)) or "none"
        return "; ".join(f"{prefix}{key}: unknown key (allowed here: {known})" for key in unknown)
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        return f"{where}: {error.instance!r} matches none of the allowed forms ({error.schema.get('description', error.message)})"
    return f"{where}: {error.message}"


def _leaf_errors(errors: Iterator[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    """Errors of ``if/then`` and ``allOf`` descend to the error inside; report that one."""
    leaves = []
    for error in errors:
        if error.validator in ("allOf", "then", "$ref") and error.context:
            leaves.extend(_leaf_errors(iter(error.context)))
        else:
            leaves.append(error)
    return leaves


def validate_config(config: dict[str, Any], schema: dict | str | Path) -> dict[str, Any]:
    """Validate ``config`` in place, fill in schema defaults, and return it.

    Raises :class:`ConfigError` listing every problem, each with its dotted key
    (``datasets.synth-cxr-a.shards: 'two' is not of type 'integer'``).
    """
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    if not isinstance(config, dict):
        raise ConfigError(f"<top level>: the configuration must be a mapping, got {type(config).__name__}")
    validator = _DefaultFillingValidator(schema)
    errors = sorted(_leaf_errors(validator.iter_errors(config)), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = sorted({_describe(error) for error in errors})
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    _check_semantics(config)
    return config


def _check_semantics(config: dict[str, Any]) -> None:
    """What a JSON schema cannot say: sums, and combinations of keys."""
    problems = []
    for name, dataset in config["datasets"].items():
        split = dataset["split"]
        total = split["train"] + split["validation"] + split["test"]
        if abs(total - 1.0) > _SPLIT_TOLERANCE:
            problems.append(
                f"datasets.{name}.split: train + validation + test must sum to 1, got {total:g}"
            )
        if dataset["adapter"] == "synthetic":
            site = dataset["options"]["site"]
            if dataset["modality"] == "xr":
                problems.append(f"datasets.{name}.modality: the synthetic adapter generates cxr, ct or mammo, not xr")
            elif dataset["modality"] != "cxr" and site != "A":
                problems.append(f"datasets.{name}.options.site: {dataset['modality']} has only site A, got {site!r}")
    for number, block in enumerate(config.get("experiments", [])):
        for name in block["train"]:
            if name not in config["datasets"]:
                problems.append(f"experiments.{number}.train: {name!r} is not a dataset of this config")
                continue
            split = config["datasets"][name]["split"]
            if split["train"] == 0 or split["validation"] == 0:
                problems.append(
                    f"experiments.{number}.train: {name!r} has no train or validation split "
                    "(a test-only dataset is tested on, not trained on)"
                )
        for pid in block["perturbations"]:
            try:
                parse_perturbation_id(pid)
            except ValueError as error:
                problems.append(f"experiments.{number}.perturbations: {str(error).splitlines()[0]}")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def shard_ids(dataset: dict[str, Any]) -> list[str]:
    """The ingestion shard ids of a dataset: known from config alone, never from a scan."""
    n = dataset["shards"]
    width = len(str(n - 1))
    return [f"{i:0{width}d}" for i in range(n)]
