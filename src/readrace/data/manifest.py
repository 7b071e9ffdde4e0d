"""The manifest: one row per preprocessed image, validated against its schema.

``workflow/schemas/manifest.schema.yaml`` describes one row as a JSON schema, checked
column by column (:func:`readrace.data.columns.check_columns`), plus what a row schema
cannot say: unique image ids, and cache indices that are a permutation of the rows.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd

from readrace.data.columns import check_columns, load_schema
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
    "bmi_source",
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


def validate_manifest(manifest: pd.DataFrame, schema: dict | str | Path, mask_set: bool = False) -> None:
    """Raise :class:`ManifestError` listing every way ``manifest`` breaks its schema. A mask
    set's manifest (``mask_set``: a lung-mask set, which records no race) must have race
    missing in every row instead."""
    if mask_set:
        schema = copy.deepcopy(schema if isinstance(schema, dict) else load_schema(schema))
        schema["properties"]["race"] = {"enum": [None]}
    problems = check_columns(manifest, schema)
    if "image_id" in manifest and manifest["image_id"].duplicated().any():
        problems.append("image_id: ids are not unique")
    if "cache_index" in manifest and len(manifest):
        index = np.sort(manifest["cache_index"].to_numpy())
        if not np.array_equal(index, np.arange(len(manifest))):
            problems.append("cache_index: must be a permutation of 0 .. n_rows - 1")
    if problems:
        raise ManifestError("manifest does not match its schema:\n  " + "\n  ".join(problems))
