"""Real patient variables the imaging datasets' own tables lack.

MIMIC-CXR has no BMI; MIMIC-IV's ``omr`` table (hosp/omr.csv.gz: subject_id, chartdate,
seq_num, result_name, result_value) records outpatient measurements. :func:`match_omr_bmi`
gives each study the BMI measured nearest to its date within a window: a recorded
``BMI (kg/m2)``, or one computed from a height (``Height (Inches)``) and a weight
(``Weight (Lbs)``) charted on the same day (703 x lb / in²). The paper's code used
``chartevents`` height and a weight table unmatched in time, and silently dropped the
patients with more than one measurement; here every study is matched or counted as not.

EMBED's density is its clinical table's ``tissueden`` (1-4 -> A-D, in the EMBED adapter);
the generic adapter reads ``bmi`` and ``breast_density`` columns of its manifest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BMI_NAME = "BMI (kg/m2)"
HEIGHT_NAME = "Height (Inches)"
WEIGHT_NAME = "Weight (Lbs)"
OMR_COLUMNS: tuple[str, ...] = ("subject_id", "chartdate", "seq_num", "result_name", "result_value")
#: Plausible BMI values (the manifest schema's bounds); others are measurement errors.
BMI_RANGE = (5.0, 100.0)


def _numbers(values: pd.Series) -> pd.Series:
    # omr writes some values with a trailing unit or as ranges; a value that is not one
    # number is not used.
    return pd.to_numeric(values.astype(str).str.strip(), errors="coerce")


def omr_bmi_measurements(omr: pd.DataFrame) -> pd.DataFrame:
    """Every BMI of ``omr``: subject_id, date, bmi, source (``recorded`` or ``height-weight``).

    A day with a recorded BMI uses it; a day with a height and a weight but no recorded BMI
    gets one computed from them (the first of each by ``seq_num``)."""
    missing = [c for c in OMR_COLUMNS if c not in omr]
    if missing:
        raise KeyError(f"omr: missing column(s) {', '.join(missing)} (expected {', '.join(OMR_COLUMNS)})")
    table = omr.assign(date=pd.to_datetime(omr["chartdate"], errors="coerce"), value=_numbers(omr["result_value"]),
                       subject_id=omr["subject_id"].astype(str))
    table = table.dropna(subset=["date", "value"]).sort_values(["subject_id", "date", "seq_num"])
    firsts = table.groupby(["subject_id", "date", "result_name"], sort=False)["value"].first().unstack("result_name")
    for name in (BMI_NAME, HEIGHT_NAME, WEIGHT_NAME):
        if name not in firsts:
            firsts[name] = np.nan
    computed = 703.0 * firsts[WEIGHT_NAME] / firsts[HEIGHT_NAME] ** 2
    bmi = firsts[BMI_NAME].where(firsts[BMI_NAME].notna(), computed)
    source = np.where(firsts[BMI_NAME].notna(), "recorded", "height-weight")
    out = pd.DataFrame({"bmi": bmi, "source": source}, index=firsts.index).reset_index()
    return out[out["bmi"].between(*BMI_RANGE)].reset_index(drop=True)


def match_omr_bmi(studies: pd.DataFrame, omr: pd.DataFrame, window_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The BMI nearest each study's date within ``window_days`` days.

    ``studies``: subject_id, study_id, StudyDate (YYYYMMDD). Returns (one row per study:
    subject_id, study_id, bmi, bmi_days (signed: measurement minus study date), bmi_source;
    NaN where unmatched) and the counts table (outcome, studies): matched recorded, matched
    from height and weight, no measurement within the window, no measurement at all. A tie
    in distance takes the earlier measurement (it could not depend on the image).
    """
    if window_days < 0:
        raise ValueError(f"bmi_window_days must be >= 0, got {window_days}")
    measurements = omr_bmi_measurements(omr)
    keys = studies.assign(subject_id=studies["subject_id"].astype(str),
                          study_date=pd.to_datetime(studies["StudyDate"].astype(str), format="%Y%m%d", errors="coerce"))
    pairs = keys[["subject_id", "study_id", "study_date"]].merge(measurements, on="subject_id", how="left")
    pairs["bmi_days"] = (pairs["date"] - pairs["study_date"]).dt.days
    pairs["distance"] = pairs["bmi_days"].abs()
    near = pairs[pairs["distance"] <= window_days].sort_values(["study_id", "distance", "bmi_days"])
    best = near.drop_duplicates("study_id")[["study_id", "bmi", "bmi_days", "source"]]
    out = keys[["subject_id", "study_id"]].merge(best, on="study_id", how="left").rename(columns={"source": "bmi_source"})
    measured = set(measurements["subject_id"])
    unmatched = out["bmi"].isna()
    counts = pd.DataFrame({
        "outcome": ["matched: recorded BMI", "matched: from height and weight",
                    f"unmatched: no measurement within {window_days} days", "unmatched: no measurement"],
        "studies": [int((out["bmi_source"] == "recorded").sum()), int((out["bmi_source"] == "height-weight").sum()),
                    int((unmatched & out["subject_id"].isin(measured)).sum()),
                    int((unmatched & ~out["subject_id"].isin(measured)).sum())],
    })
    return out, counts
