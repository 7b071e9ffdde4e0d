"""Free-text race, ethnicity and sex values -> readrace's categories, by one table of rules.

Every adapter whose dataset records race as text (MIMIC-IV, CheXpert, EMBED, a hospital's
manifest) maps it here, so that "BLACK/AFRICAN AMERICAN", "Black, non-Hispanic" and
"African American  or Black" all become "Black" by the same rules.

Race rules (on the lower-cased value, whitespace collapsed; the first rule that matches wins):

1. missing or empty                                  -> NaN ("no race recorded")
2. unknown, unable to obtain, declined, refused,
   not recorded/reported, unavailable                -> "Unknown"
3. multiple/more than one race, multiracial          -> "Other"
4. American Indian, Alaska(n) Native, Native
   Hawaiian, Pacific Islander                        -> "Other" (before rule 5: "Indian")
5. exactly one of {asian, black / african american,
   white / caucasian} named                          -> that category
   two or more of them named                         -> "Other" (a mixed value)
   a value saying "other" ("Other, Hispanic")       -> "Other"
6. a Hispanic/Latino value naming no race            -> "Unknown" (the ethnicity excludes it)
7. anything else ("Other", "South American", ...)    -> "Other"

Hispanic: a value that says hispanic or latino, and not non-/not Hispanic (or Latino),
in either the ethnicity or the race value ("White, Hispanic", "HISPANIC/LATINO - CUBAN").
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from readrace.labels import HISPANIC, RACE_CATEGORIES

#: The ethnicity value written for patients known not to be Hispanic or Latino.
NOT_HISPANIC = "Not Hispanic or Latino"

#: Quarantine reason of a patient whose records map to two different races.
CONFLICTING_RACE = "excluded: conflicting race records"

_UNKNOWN = re.compile(
    r"unknown|unable to obtain|declined|refused|not recorded|not reported|unreported|unavailable|^unk$|^\?$"
)
_MULTIPLE = re.compile(r"multiple|more than one|multi-?racial|two or more|mixed")
_OTHER_NAMED = re.compile(r"american indian|alaska|native hawaiian|pacific islander")
_NAMED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Asian", re.compile(r"\basian\b")),
    ("Black", re.compile(r"\bblack\b|african[ -]american")),
    ("White", re.compile(r"\bwhite\b|\bcaucasian\b")),
)
_OTHER_WORD = re.compile(r"\bother\b")
_NOT_HISPANIC = re.compile(r"\b(non|not)[ -]?(hispanic|latino|latina)")
_HISPANIC = re.compile(r"hispanic|latino|latina")
_SEX = {"f": "F", "female": "F", "woman": "F", "m": "M", "male": "M", "man": "M"}


def _normal(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = " ".join(str(value).split()).lower()
    return text or None


def map_race(value: object, overrides: Mapping[str, str] | None = None) -> str | float:
    """One race value -> "Asian", "Black", "White", "Other", "Unknown", or NaN when missing.

    ``overrides`` maps a dataset's own values (compared case-insensitively) to a category
    before the rules are tried.
    """
    text = _normal(value)
    if text is None:
        return np.nan
    if overrides:
        for raw, category in overrides.items():
            if _normal(raw) == text:
                return category
    if _UNKNOWN.search(text):
        return "Unknown"
    if _MULTIPLE.search(text) or _OTHER_NAMED.search(text):
        return "Other"
    named = [category for category, pattern in _NAMED if pattern.search(text)]
    if len(named) == 1:
        return named[0]
    if len(named) > 1 or _OTHER_WORD.search(text):
        return "Other"
    if is_hispanic(text):
        return "Unknown"
    return "Other"


def is_hispanic(value: object) -> bool:
    """Whether a race or ethnicity value says Hispanic or Latino (and not "non-Hispanic")."""
    text = _normal(value)
    if text is None or _NOT_HISPANIC.search(text):
        return False
    return bool(_HISPANIC.search(text))


def map_ethnicity(ethnicity: object, race: object = None) -> str | float:
    """HISPANIC when either value says so; NOT_HISPANIC when the ethnicity value says not;
    NaN when nothing is known."""
    if is_hispanic(ethnicity) or is_hispanic(race):
        return HISPANIC
    text = _normal(ethnicity)
    if text is not None and _NOT_HISPANIC.search(text):
        return NOT_HISPANIC
    return np.nan


def map_sex(value: object) -> str | float:
    """"F"/"M" from F, M, Female, Male (any case); NaN for anything else (Unknown, U, ...)."""
    text = _normal(value)
    return _SEX.get(text, np.nan) if text is not None else np.nan


def check_overrides(overrides: Mapping[str, str] | None, where: str) -> dict[str, str]:
    """A race_map option, checked: every target must be one of the five race categories."""
    overrides = dict(overrides or {})
    wrong = {raw: category for raw, category in overrides.items() if category not in RACE_CATEGORIES}
    if wrong:
        from readrace.ingest.adapters import DatasetError

        raise DatasetError(
            f"{where}: race_map value(s) {wrong} are not among {', '.join(RACE_CATEGORIES)}"
        )
    return overrides


def map_demographics(
    race: pd.Series,
    ethnicity: pd.Series | None = None,
    sex: pd.Series | None = None,
    overrides: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Race, ethnicity and sex columns mapped value by value (same index as ``race``)."""
    mapping = {value: map_race(value, overrides) for value in race.dropna().unique()}
    mapped = pd.DataFrame({"race": race.map(mapping).astype(object)}, index=race.index)
    eth = ethnicity if ethnicity is not None else pd.Series(np.nan, index=race.index, dtype=object)
    mapped["ethnicity"] = [map_ethnicity(e, r) for e, r in zip(eth, race)]
    if sex is not None:
        mapped["sex"] = sex.map(map_sex).astype(object)
    return mapped


def patient_race(patients: pd.Series, race: pd.Series, ethnicity: pd.Series) -> pd.DataFrame:
    """One race per patient from several records (admissions, exam rows, images).

    Unknown and missing records are ignored; a patient whose remaining records name two
    different races gets race NaN and ``exclusion`` CONFLICTING_RACE; a patient with no
    known race gets "Unknown" if any record said so, else NaN. The patient is Hispanic when
    any record says so. Indexed by patient, columns race, ethnicity, exclusion.
    """
    records = pd.DataFrame(
        {"patient": patients.to_numpy(), "race": race.to_numpy(), "ethnicity": ethnicity.to_numpy()}
    )
    # Vectorised per-patient reductions: MIMIC-IV has hundreds of thousands of admissions.
    by = records["patient"]
    known = records["race"].where(records["race"] != "Unknown")
    n_known = known.groupby(by, sort=True).nunique()
    first_known = known.groupby(by, sort=True).first()
    said_unknown = (records["race"] == "Unknown").groupby(by, sort=True).any()
    hispanic = (records["ethnicity"] == HISPANIC).groupby(by, sort=True).any()
    any_ethnicity = records["ethnicity"].notna().groupby(by, sort=True).any()
    missing = pd.Series(np.nan, index=n_known.index, dtype=object)
    no_known_race = missing.mask(said_unknown & (n_known == 0), "Unknown")
    table = pd.DataFrame(
        {
            "race": first_known.astype(object).where(n_known == 1, no_known_race),
            "ethnicity": missing.mask(any_ethnicity, NOT_HISPANIC).mask(hispanic, HISPANIC),
            "exclusion": missing.mask(n_known > 1, CONFLICTING_RACE),
        }
    )
    table.index.name = "patient"
    return table.astype(object)
