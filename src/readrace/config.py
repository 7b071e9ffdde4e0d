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

# Torch-free, as everything here: the Snakefile calls validate_config at every parse (dry
# runs included).
from readrace.experiments import check_experiments, dataset_group
from readrace.experiments.segmentation import MASK_SET_ADAPTERS

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
        return "; ".join(_unknown_key(prefix + key, known) for key in unknown)
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        return f"{where}: {error.instance!r} matches none of the allowed forms ({error.schema.get('description', error.message)})"
    return f"{where}: {error.message}"


#: Keys that moved, old dotted path -> new one, so an older config gets told where.
MOVED_KEYS: dict[str, str] = {
    f"training.{key}": f"execution.{key}"
    for key in ("threads", "gpus", "device", "num_workers", "preload_max_gb", "predict_batch_size")
}


def _unknown_key(path: str, known: str) -> str:
    if path in MOVED_KEYS:
        return f"{path}: moved to {MOVED_KEYS[path]} (how a job runs, not what it computes)"
    return f"{path}: unknown key (allowed here: {known})"


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
    """What a JSON schema cannot say: sums, combinations of keys, the experiment kinds' own
    checks."""
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
    problems += _check_mask_sets(config)
    problems += _check_groups(config)
    problems += check_experiments(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _check_mask_sets(config: dict[str, Any]) -> list[str]:
    """A mask set is a radiograph dataset with ground-truth lung masks; the adapters of the
    public mask sets read nothing else."""
    problems = []
    for name, dataset in config["datasets"].items():
        where = f"datasets.{name}.mask_set"
        if dataset["adapter"] in MASK_SET_ADAPTERS and not dataset["mask_set"]:
            problems.append(f"{where}: the {dataset['adapter']} adapter reads a lung-mask set, which records no "
                            f"race: set mask_set: true (it then serves segmentation blocks only)")
        if not dataset["mask_set"]:
            continue
        if dataset["modality"] != "cxr":
            problems.append(f"{where}: a mask set trains the radiograph U-Net: modality must be cxr, "
                            f"got {dataset['modality']!r}")
        elif dataset["adapter"] not in (*MASK_SET_ADAPTERS, "synthetic") and not dataset["options"].get("lung_masks"):
            problems.append(f"{where}: a mask set needs ground-truth lung masks: set "
                            f"datasets.{name}.options.lung_masks")
    return problems


#: What the datasets of one group must share, and how to read it from a dataset's config.
_GROUP_SHARED = (("modality", lambda d: d["modality"]), ("preprocess.size", lambda d: d["preprocess"]["size"]))


def _check_groups(config: dict[str, Any]) -> list[str]:
    """The datasets of a group test each other's models: they must share the task modality
    and the cache size (a filter diameter in frequency bins of the cache grid means another
    frequency on another grid)."""
    groups: dict[str, list[str]] = {}
    for name in config["datasets"]:
        groups.setdefault(dataset_group(config, name), []).append(name)
    problems = []
    for group, names in groups.items():
        for key, value in _GROUP_SHARED:
            values = {name: value(config["datasets"][name]) for name in names}
            if len(set(values.values())) > 1:
                listed = ", ".join(f"{name}: {v}" for name, v in values.items())
                problems.append(
                    f"datasets: the datasets of group {group!r} test each other's models and must share "
                    f"their {key} ({listed}); give the odd one a group of its own"
                )
    return problems


def execution_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``execution`` block: how jobs run (threads, GPUs, device, workers, preloading,
    prediction batch size), never what they compute. No rule takes these as params, so
    changing them reruns nothing."""
    return config["execution"]


def shard_ids(dataset: dict[str, Any]) -> list[str]:
    """The ingestion shard ids of a dataset: known from config alone, never from a scan."""
    n = dataset["shards"]
    width = len(str(n - 1))
    return [f"{i:0{width}d}" for i in range(n)]
