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
#: A manifest's ``bmi_source`` of a BMI matched in omr: this prefix and the match's outcome.
OMR_PREFIX = "omr "
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
    NaN where unmatched; bmi_outcome, one of the counts' outcomes) and the counts table
    (outcome, studies): matched recorded, matched from height and weight, no measurement
    within the window, no measurement at all. A tie
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
    outcomes = ["matched: recorded BMI", "matched: from height and weight",
                f"unmatched: no measurement within {window_days} days", "unmatched: no measurement"]
    out["bmi_outcome"] = np.select(
        [out["bmi_source"] == "recorded", out["bmi_source"] == "height-weight",
         unmatched & out["subject_id"].isin(measured)], outcomes[:3], outcomes[3])
    counts = pd.DataFrame({"outcome": outcomes,
                           "studies": [int((out["bmi_outcome"] == o).sum()) for o in outcomes]})
    return out, counts


#: Columns of the coverage table (results/tables/confounder_variables.csv).
COVERAGE_COLUMNS: tuple[str, ...] = ("dataset", "variable", "source", "studies", "patients", "images",
                                     "share_of_studies")


def variable_coverage(manifest: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """How many studies, patients and images of ``dataset`` have each patient variable, by
    source: ``bmi`` and ``breast_density``. A BMI's source is the manifest's ``bmi_source``
    (an adapter's match, e.g. MIMIC-IV omr: recorded, from height and weight, or why none),
    else ``dataset`` (its own column) where present and ``missing`` where not; a density's is
    ``dataset`` or ``missing``. Every study is in exactly one row per variable."""
    rows = []
    n_studies = manifest["study_id"].nunique()
    for variable in ("bmi", "breast_density"):
        values = manifest[variable] if variable in manifest else pd.Series(np.nan, index=manifest.index)
        source = pd.Series(np.where(values.notna(), "dataset", "missing"), index=manifest.index, dtype=object)
        if variable == "bmi" and "bmi_source" in manifest:
            named = manifest["bmi_source"]
            source = named.where(named.notna(), source).astype(object)
        # A study's variable is one value: the source of its first image speaks for it.
        first = ~manifest["study_id"].duplicated()
        by_study = pd.Series(source[first].to_numpy(), index=manifest.loc[first, "study_id"])
        for name in sorted(set(source)):
            studies = by_study[by_study == name].index
            images = manifest["study_id"].isin(studies)
            rows.append({"dataset": dataset, "variable": variable, "source": name, "studies": len(studies),
                         "patients": manifest.loc[images, "patient_id"].nunique(), "images": int(images.sum()),
                         "share_of_studies": len(studies) / n_studies if n_studies else np.nan})
    return pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
