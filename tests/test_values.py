"""readrace.ingest.values: numbers parsed in one place, invalid ones recorded (known answers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from conftest import MANIFEST_SCHEMA
from readrace.ingest.values import NUMERIC_COLUMNS, parse_value, parse_values, value_ranges


@pytest.mark.parametrize(
    ("value", "expected"),
    [("61", 61.0), (" 61.5 ", 61.5), ("-1", -1.0), ("1e2", 100.0), (".5", 0.5), (61, 61.0), (61.5, 61.5),
     (np.int64(7), 7.0), (np.float32(0.5), 0.5)],
)
def test_numbers_parse(value, expected):
    assert parse_value(value) == (expected, False)


@pytest.mark.parametrize("value", [None, math.nan, np.nan, "", "   "])
def test_absent_values_are_missing_not_invalid(value):
    number, invalid = parse_value(value)
    assert math.isnan(number) and not invalid


@pytest.mark.parametrize("value", ["45Y", "n/a", "N/A", "abc", "nan", "inf", "1_000", "1,5", "4 5", True, math.inf])
def test_values_that_are_not_numbers_are_invalid(value):
    number, invalid = parse_value(value)
    assert math.isnan(number) and invalid


def test_range_is_inclusive_and_out_of_range_is_invalid():
    assert parse_value("0", 0, 120) == (0.0, False) and parse_value("120", 0, 120) == (120.0, False)
    for value in ("-0.5", "120.01", 150):
        number, invalid = parse_value(value, 0, 120)
        assert math.isnan(number) and invalid


def test_ranges_come_from_the_manifest_schema():
    ranges = value_ranges(yaml.safe_load(MANIFEST_SCHEMA.read_text()))
    assert ranges["age"] == (0, 120) and ranges["bmi"] == (5, 100)
    assert ranges["Cardiomegaly"] == (None, None) and set(ranges) == set(NUMERIC_COLUMNS)


def test_a_record_names_its_invalid_columns():
    ranges = {"age": (0, 120), "bmi": (5, 100)}
    values, invalid = parse_values({"age": "45Y", "bmi": "3", "Edema": "-1.0", "Cardiomegaly": "x"}, ranges)
    assert invalid == ["age", "bmi", "Cardiomegaly"]
    assert math.isnan(values["age"]) and math.isnan(values["bmi"]) and values["Edema"] == -1.0
    assert math.isnan(values["Pneumonia"])  # absent: missing, not invalid
