"""The manifest: one row per preprocessed image, validated against its schema.

``workflow/schemas/manifest.schema.yaml`` describes one row as a JSON schema. Validating
300,000 rows one JSON object at a time would take minutes, so :func:`validate_manifest`
reads the same schema column by column with vectorised pandas checks. It understands the
subset of JSON schema the manifest schema uses: ``required``, ``type`` (a name or a list that
may include ``"null"``), ``enum``, ``pattern``, ``minimum`` and ``maximum``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from readrace.labels import FINDINGS

#: Columns in the order they are written; optional ones are present with nulls.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "study_id",
    "series_id",
    "image_id",
    "modality",
    "dicom_modality",
    "view",
    "laterality",
    "race",
    "sex",
    "age",
    "bmi",
    "breast_density",
    *FINDINGS,
    "manufacturer",
    "slice_index",
    "frame",
    "split",
    "cache_index",
)


class ManifestError(ValueError):
    """The manifest does not satisfy its schema."""


def load_manifest_schema(path: str | Path) -> dict:
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


def validate_manifest(manifest: pd.DataFrame, schema: dict | str | Path) -> None:
    """Raise :class:`ManifestError` listing every way ``manifest`` breaks its schema."""
    if not isinstance(schema, dict):
        schema = load_manifest_schema(schema)
    problems = [f"{name}: required column is missing" for name in schema.get("required", []) if name not in manifest]
    for name, spec in schema.get("properties", {}).items():
        if name in manifest:
            problems.extend(_check_column(name, manifest[name], spec))
    if "image_id" in manifest and manifest["image_id"].duplicated().any():
        problems.append("image_id: ids are not unique")
    if "cache_index" in manifest and len(manifest):
        index = np.sort(manifest["cache_index"].to_numpy())
        if not np.array_equal(index, np.arange(len(manifest))):
            problems.append("cache_index: must be a permutation of 0 .. n_rows - 1")
    if problems:
        raise ManifestError("manifest does not match its schema:\n  " + "\n  ".join(problems))
