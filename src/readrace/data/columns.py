"""Tables validated column by column against a JSON schema of one row.

Validating 300,000 rows one JSON object at a time would take minutes, so
:func:`check_columns` reads the row schema column by column with vectorised pandas checks.
It understands the subset of JSON schema the table schemas use (the manifest, predictions):
``required``, ``properties`` and ``patternProperties`` (a column's spec by its name),
``type`` (a name or a list that may include ``"null"``), ``enum``, ``pattern``, ``minimum``
and ``maximum``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def load_schema(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _type_names(spec: dict) -> tuple[set[str], bool]:
    if "enum" in spec:
        values = spec["enum"]
        return set(), None in values
    declared = spec.get("type", [])
    names = {declared} if isinstance(declared, str) else set(declared)
    return names - {"null"}, "null" in names


def _check_column(name: str, column: pd.Series, spec: dict) -> list[str]:
    problems = []
    types, nullable = _type_names(spec)
    missing = column.isna()
    if missing.any() and not nullable:
        problems.append(f"{name}: {int(missing.sum())} missing value(s) in a column that allows none")
    present = column[~missing]
    if present.empty:
        return problems
    if "enum" in spec:
        allowed = [v for v in spec["enum"] if v is not None]
        bad = present[~present.isin(allowed)]
        if len(bad):
            problems.append(f"{name}: value(s) {sorted(map(str, bad.unique()))[:5]} not in {allowed}")
    if "string" in types and not present.map(lambda v: isinstance(v, str)).all():
        problems.append(f"{name}: expected strings")
    if types & {"number", "integer"}:
        if not pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
            problems.append(f"{name}: expected numbers, got dtype {column.dtype}")
            return problems
        values = present.to_numpy(dtype=float)
        if "integer" in types and "number" not in types and not np.all(np.mod(values, 1) == 0):
            problems.append(f"{name}: expected integers")
        if "minimum" in spec and (values < spec["minimum"]).any():
            problems.append(f"{name}: value(s) below the minimum {spec['minimum']} (e.g. {values.min():g})")
        if "maximum" in spec and (values > spec["maximum"]).any():
            problems.append(f"{name}: value(s) above the maximum {spec['maximum']} (e.g. {values.max():g})")
    if "pattern" in spec:
        bad = present[~present.astype(str).str.fullmatch(spec["pattern"])]
        if len(bad):
            problems.append(f"{name}: {len(bad)} value(s) do not match {spec['pattern']!r}")
    return problems


def check_columns(table: pd.DataFrame, schema: dict | str | Path) -> list[str]:
    """Every way ``table`` breaks the row ``schema``, one line per problem (empty: valid)."""
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    problems = [f"{name}: required column is missing" for name in schema.get("required", []) if name not in table]
    patterns = [(re.compile(pattern), spec) for pattern, spec in schema.get("patternProperties", {}).items()]
    for name in table.columns:
        spec = schema.get("properties", {}).get(name)
        if spec is None:
            spec = next((spec for pattern, spec in patterns if pattern.search(str(name))), None)
        if spec is not None:
            problems.extend(_check_column(str(name), table[name], spec))
    return problems
