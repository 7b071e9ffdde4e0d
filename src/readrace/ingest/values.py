"""Numeric values of a dataset's tables (age, BMI, finding labels), parsed in one place.

Adapters pass these values as their tables write them ("61", 61.0, "45Y", "n/a"); the shard
job parses each record's values as the record becomes a manifest row (:func:`parse_values`).
A value that is not a number, or lies outside the manifest schema's range (age 0-120, BMI
5-100), is set missing *and recorded*: the row's ``invalid_values`` column names it, and the
gather job counts it in the dataset's summary (group ``invalid value``), so that a column of
"45Y"s is seen rather than silently becoming missing ages.

A value is missing (and not invalid) when it is absent: None, NaN, or an empty cell.
Anything else must be a decimal number ("61", "61.5", "-1", "1e2", 61, 61.5).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from readrace.labels import FINDINGS

#: Record values parsed as numbers; the manifest has one column of each.
NUMERIC_COLUMNS: tuple[str, ...] = ("age", "bmi", *FINDINGS)

#: What a number looks like in a table; Python's float() also takes "nan", "inf" and "1_000".
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

Range = tuple[float | None, float | None]


def parse_value(value: Any, minimum: float | None = None, maximum: float | None = None) -> tuple[float, bool]:
    """``(number, invalid)``: the value as a float, or NaN; ``invalid`` is True when a value
    was present but is not a number, is not finite, or lies outside [minimum, maximum]."""
    if value is None or isinstance(value, bool | np.bool_):
        return math.nan, value is not None
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        if math.isnan(number):
            return math.nan, False
    else:
        if pd.isna(value):
            return math.nan, False
        text = str(value).strip()
        if not text:
            return math.nan, False
        if not _NUMBER.fullmatch(text):
            return math.nan, True
        number = float(text)
    if not math.isfinite(number):
        return math.nan, True
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        return math.nan, True
    return number, False


def value_ranges(schema: Mapping[str, Any]) -> dict[str, Range]:
    """The (minimum, maximum) of each numeric column in the manifest schema (None: no bound)."""
    properties = schema.get("properties", {})
    return {
        column: (properties.get(column, {}).get("minimum"), properties.get(column, {}).get("maximum"))
        for column in NUMERIC_COLUMNS
    }


def parse_values(record: Mapping[str, Any], ranges: Mapping[str, Range]) -> tuple[dict[str, float], list[str]]:
    """The numeric columns of one record, parsed, and the names of those that were invalid."""
    values, invalid = {}, []
    for column in NUMERIC_COLUMNS:
        minimum, maximum = ranges.get(column, (None, None))
        values[column], bad = parse_value(record.get(column), minimum, maximum)
        if bad:
            invalid.append(column)
    return values, invalid
