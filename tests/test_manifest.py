"""Manifest validation against workflow/schemas/manifest.schema.yaml."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import MANIFEST_SCHEMA
from readrace.data.manifest import MANIFEST_COLUMNS, ManifestError, validate_manifest
from readrace.data.pseudonym import pseudonymize


def _manifest(n: int = 6) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append(
            {
                "patient_id": pseudonymize(f"p{i // 2}", "salt-for-tests", "patient"),
                "study_id": pseudonymize(f"s{i // 2}", "salt-for-tests", "study"),
                "series_id": pseudonymize(f"r{i}", "salt-for-tests", "series"),
                "image_id": pseudonymize(f"i{i}", "salt-for-tests", "image"),
                "modality": "cxr", "dicom_modality": "DX", "view": "PA", "laterality": None,
                "race": ["Asian", "Black", "White"][i % 3], "sex": "F", "age": 50.0 + i, "bmi": 25.0,
                "breast_density": None, "manufacturer": "X", "slice_index": None, "frame": 0,
                "split": "train", "cache_index": i,
            }
        )
    frame = pd.DataFrame(rows)
    for column in MANIFEST_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    return frame[list(MANIFEST_COLUMNS)]


def test_a_good_manifest_passes():
    validate_manifest(_manifest(), MANIFEST_SCHEMA)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("race", "Other", "race: value(s) ['Other'] not in"),
        ("split", "holdout", "split: value(s)"),
        ("age", -3.0, "age: value(s) below the minimum 0"),
        ("patient_id", "MRN00000042", "patient_id: 1 value(s) do not match"),
        ("race", None, "race: 1 missing value(s)"),
    ],
)
def test_bad_values_are_reported_by_column(column, value, expected):
    manifest = _manifest()
    manifest.loc[2, column] = value
    with pytest.raises(ManifestError, match=expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        validate_manifest(manifest, MANIFEST_SCHEMA)


def test_missing_required_column_and_bad_cache_index():
    manifest = _manifest().drop(columns=["sex"])
    manifest.loc[0, "cache_index"] = 99
    with pytest.raises(ManifestError) as info:
        validate_manifest(manifest, MANIFEST_SCHEMA)
    assert "sex: required column is missing" in str(info.value)
    assert "cache_index: must be a permutation" in str(info.value)


def test_a_mask_sets_manifest_has_no_race():
    """A lung-mask set (dataset setting mask_set) records no race: missing in every row is
    what its manifest must have, and a race value in it is an error."""
    manifest = _manifest().assign(race=None)
    validate_manifest(manifest, MANIFEST_SCHEMA, mask_set=True)
    with pytest.raises(ManifestError, match="race: 6 missing value"):
        validate_manifest(manifest, MANIFEST_SCHEMA)
    manifest.loc[1, "race"] = "Black"
    with pytest.raises(ManifestError, match=r"race: value\(s\) \['Black'\] not in \[\]"):
        validate_manifest(manifest, MANIFEST_SCHEMA, mask_set=True)
