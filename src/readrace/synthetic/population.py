"""The synthetic population: patients and studies, with weak, known confounders.

Race is drawn first; age, sex, BMI, the 14 findings and breast density then depend on it
only weakly, so that a logistic regression on these covariates alone reaches a macro
one-vs-rest AUC of about 0.6 -- the level the paper reports for its confounders (BMI 0.55,
disease distribution 0.61, breast density 0.54-0.61). Image-level race information comes
only from the planted signal (see ``signal.py``), never from these covariates.

``sample_records`` also draws the PHI-like header values (names, birth dates, study dates,
accession numbers) that go into the DICOM headers; ``sample_population`` returns the
tables without them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pydicom.uid import generate_uid

from readrace import labels

#: Race mix per modality (cxr: three task classes; ct, mammo: Black vs White).
RACE_MIX: dict[str, dict[str, float]] = {
    "cxr": {"Asian": 0.20, "Black": 0.30, "White": 0.40, "Other": 0.05, "Unknown": 0.05},
    "ct": {"Asian": 0.0, "Black": 0.45, "White": 0.45, "Other": 0.05, "Unknown": 0.05},
    "mammo": {"Asian": 0.0, "Black": 0.45, "White": 0.45, "Other": 0.05, "Unknown": 0.05},
}

#: Fraction of patients of Hispanic or Latino ethnicity, the same in every race.
HISPANIC_RATE = 0.06

#: Studies per patient: probabilities of 1, 2, 3 studies.
STUDIES_PER_PATIENT: dict[str, tuple[float, ...]] = {
    "cxr": (0.5, 0.3, 0.2),
    "ct": (0.6, 0.4),
    "mammo": (0.6, 0.4),
}

# Weak race effects on the covariates (Other/Unknown take the neutral value). The sizes are
# tuned so that the covariates predict race about as poorly as in the paper.
_AGE_SHIFT_SD = {"Asian": -0.12, "Black": -0.2, "White": 0.12}  # in units of the age sd
_FEMALE_PROB = {"Asian": 0.52, "Black": 0.56, "White": 0.47}
_BMI_MEAN = {"Asian": 26.4, "Black": 28.6, "White": 27.6}
_BMI_SD = 5.5
# Age at the first study: (mean, sd, min, max) per modality; ct resembles lung screening,
# mammo breast screening.
_AGE_MODEL = {"cxr": (60.0, 16.0, 18, 90), "ct": (63.0, 8.0, 45, 85), "mammo": (57.0, 10.0, 40, 89)}

# Prevalence of each finding at age 60 for a neutral patient, and its change in log-odds
# per decade of age. "No Finding" is derived: no pathology (support devices do not count).
_FINDING_PREVALENCE = {
    "Enlarged Cardiomediastinum": 0.05,
    "Cardiomegaly": 0.12,
    "Lung Opacity": 0.22,
    "Lung Lesion": 0.04,
    "Edema": 0.10,
    "Consolidation": 0.06,
    "Pneumonia": 0.04,
    "Atelectasis": 0.14,
    "Pneumothorax": 0.05,
    "Pleural Effusion": 0.18,
    "Pleural Other": 0.02,
    "Fracture": 0.04,
    "Support Devices": 0.22,
}
_FINDING_AGE_LOGIT = {
    "Cardiomegaly": 0.25,
    "Edema": 0.2,
    "Pleural Effusion": 0.2,
    "Atelectasis": 0.15,
    "Lung Lesion": 0.15,
    "Fracture": 0.1,
    "Pneumothorax": -0.15,
}
_FINDING_RACE_LOGIT = {
    ("Black", "Cardiomegaly"): 0.6,
    ("Black", "Enlarged Cardiomediastinum"): 0.4,
    ("Black", "Edema"): 0.3,
    ("Asian", "Cardiomegaly"): -0.4,
    ("Asian", "Lung Lesion"): 0.5,
    ("Asian", "Pleural Effusion"): -0.2,
    ("Asian", "Support Devices"): -0.2,
    ("White", "Atelectasis"): 0.25,
    ("White", "Pneumothorax"): 0.3,
    ("White", "Fracture"): 0.3,
    ("White", "Lung Opacity"): 0.1,
}
_DENSITY_RACE_SHIFT = {"Black": -0.15, "White": 0.1}

# PHI-like values. Invented, common-sounding names: they exist so that tests can check
# that no header value leaks into results.
_LAST_NAMES = (
    "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "WILSON",
    "ANDERSON", "TAYLOR", "THOMAS", "MOORE", "JACKSON", "MARTIN", "LEE", "THOMPSON", "WHITE",
    "HARRIS", "CLARK", "LEWIS", "ROBINSON", "WALKER", "YOUNG", "ALLEN", "KING", "WRIGHT",
    "SCOTT", "NGUYEN", "HILL", "GREEN", "ADAMS", "BAKER", "NELSON", "CARTER", "MITCHELL",
    "CHEN", "WANG", "KIM", "PATEL", "CAMPBELL", "PARKER", "EVANS", "EDWARDS", "COLLINS",
)
_FIRST_NAMES = {
    "F": (
        "MARY", "PATRICIA", "JENNIFER", "LINDA", "ELIZABETH", "BARBARA", "SUSAN", "JESSICA",
        "SARAH", "KAREN", "NANCY", "LISA", "BETTY", "MARGARET", "SANDRA", "ASHLEY", "EMILY",
        "DONNA", "MICHELLE", "CAROL", "AMANDA", "MELISSA", "DEBORAH", "GRACE", "MEI", "AISHA",
    ),
    "M": (
        "JAMES", "ROBERT", "JOHN", "MICHAEL", "DAVID", "WILLIAM", "RICHARD", "JOSEPH",
        "THOMAS", "CHARLES", "CHRISTOPHER", "DANIEL", "MATTHEW", "ANTHONY", "MARK", "DONALD",
        "STEVEN", "PAUL", "ANDREW", "JOSHUA", "KENNETH", "KEVIN", "BRIAN", "GEORGE", "WEI",
        "MALIK",
    ),
}

#: Columns of the public tables, in order.
PATIENT_COLUMNS = ("PatientID", "race", "ethnicity", "sex", "bmi")
_STUDY_BASE_COLUMNS = ("PatientID", "StudyInstanceUID", "age")

# Random streams of the cohort seed (see cohort.py for the others).
STREAM_POPULATION = 1


def study_columns(modality: str) -> tuple[str, ...]:
    """Columns of studies.csv for ``modality``."""
    if modality == "cxr":
        return _STUDY_BASE_COLUMNS + labels.FINDINGS
    if modality == "mammo":
        return _STUDY_BASE_COLUMNS + ("breast_density",)
    return _STUDY_BASE_COLUMNS


def _per_race(values: dict[str, float], race: np.ndarray, default: float) -> np.ndarray:
    return np.array([values.get(r, default) for r in race], dtype=float)


def _age_on(birth: dt.date, day: dt.date) -> int:
    """Completed years of age on ``day`` (the DICOM PatientAge convention)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def sample_records(n_patients: int, modality: str, seed: int,
                   bmi_by_race: dict[str, float] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw patients and studies with their PHI-like header values.

    ``bmi_by_race`` (race -> mean BMI, and ``sd``) replaces the weak default dependence of
    BMI on race: a strong one plants a confounder that the anatomy draws (body habitus),
    for the known-answer tests of the confounders family. None keeps the default draws
    bit for bit.

    Returns the public columns (see ``sample_population``) plus, for patients,
    ``index`` (1-based generator index), ``PatientName``, ``PatientBirthDate``; for
    studies, ``patient_index``, ``study_index`` (1-based within the patient), ``StudyDate``,
    ``StudyTime``, ``AccessionNumber``, ``ReferringPhysicianName``.
    """
    if modality not in RACE_MIX:
        raise ValueError(f"modality {modality!r} has no synthetic population")
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    rng = np.random.default_rng([seed, STREAM_POPULATION])
    n = n_patients

    mix = RACE_MIX[modality]
    race = rng.choice(np.array(labels.RACE_CATEGORIES), size=n,
                      p=[mix[r] for r in labels.RACE_CATEGORIES])
    hispanic = rng.random(n) < HISPANIC_RATE
    if modality == "mammo":
        female = np.ones(n, dtype=bool)
    else:
        female = rng.random(n) < _per_race(_FEMALE_PROB, race, 0.5)
    sex = np.where(female, "F", "M")
    if bmi_by_race is None:
        bmi_mean, bmi_sd = _per_race(_BMI_MEAN, race, 27.5), _BMI_SD
    else:
        means = {r: float(v) for r, v in bmi_by_race.items() if r != "sd"}
        bmi_mean, bmi_sd = _per_race(means, race, 27.5), float(bmi_by_race.get("sd", _BMI_SD))
    bmi = np.clip(rng.normal(bmi_mean, bmi_sd), 16.0, 50.0).round(1)
    mean, sd, lo, hi = _AGE_MODEL[modality]
    first_age = np.clip(rng.normal(mean + sd * _per_race(_AGE_SHIFT_SD, race, 0.0), sd), lo, hi)

    # Dates: the first study in 2012-2021, later studies 2 to 24 months apart; the birth
    # date follows from the age at the first study, so every header age is consistent.
    first_day = rng.integers(0, 3650, size=n)
    birth_offset = (first_age * 365.25).astype(int) + rng.integers(0, 365, size=n)
    counts = rng.choice(np.arange(1, len(STUDIES_PER_PATIENT[modality]) + 1), size=n,
                        p=STUDIES_PER_PATIENT[modality])
    mrn = 10_000_000 + rng.choice(90_000_000, size=n, replace=False)
    last = rng.choice(np.array(_LAST_NAMES), size=n)
    first = np.where(female, rng.choice(np.array(_FIRST_NAMES["F"]), size=n),
                     rng.choice(np.array(_FIRST_NAMES["M"]), size=n))

    epoch = dt.date(2012, 1, 1)
    patient_rows, study_rows = [], []
    for i in range(n):
        patient_id = f"MRN{mrn[i]:08d}"
        day = epoch + dt.timedelta(days=int(first_day[i]))
        birth = day - dt.timedelta(days=int(birth_offset[i]))
        patient_rows.append({
            "PatientID": patient_id,
            "race": race[i],
            "ethnicity": labels.HISPANIC if hispanic[i] else "Not Hispanic or Latino",
            "sex": sex[i],
            "bmi": float(bmi[i]),
            "index": i + 1,
            "PatientName": f"{last[i]}^{first[i]}",
            "PatientBirthDate": birth.strftime("%Y%m%d"),
        })
        for k in range(int(counts[i])):
            if k:
                day = day + dt.timedelta(days=int(rng.integers(60, 730)))
            study_rows.append({
                "PatientID": patient_id,
                "StudyInstanceUID": generate_uid(
                    entropy_srcs=["readrace-synthetic", modality, str(seed), patient_id, str(k)]
                ),
                "age": _age_on(birth, day),
                "patient_index": i + 1,
                "study_index": k + 1,
                "StudyDate": day.strftime("%Y%m%d"),
                "StudyTime": f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}"
                             f"{int(rng.integers(0, 60)):02d}",
                "AccessionNumber": f"{int(rng.integers(10**9, 10**10))}",
                "ReferringPhysicianName": f"{rng.choice(_LAST_NAMES)}^"
                                          f"{rng.choice(_FIRST_NAMES['F'] + _FIRST_NAMES['M'])}",
                "_race": race[i],
                "_bmi": float(bmi[i]),
            })
    patients = pd.DataFrame(patient_rows)
    studies = pd.DataFrame(study_rows)

    if modality == "cxr":
        _add_findings(studies, rng)
    elif modality == "mammo":
        _add_breast_density(studies, rng)
    studies = studies.drop(columns=["_race", "_bmi"])
    return patients, studies


def _add_findings(studies: pd.DataFrame, rng: np.random.Generator) -> None:
    """Add the 14 CheXpert finding columns (1.0/0.0), weakly dependent on race and age."""
    race = studies["_race"].to_numpy()
    decades = (studies["age"].to_numpy(dtype=float) - 60.0) / 10.0
    pathology = np.zeros(len(studies), dtype=bool)
    for name in labels.FINDINGS:
        if name == "No Finding":
            continue
        p = _FINDING_PREVALENCE[name]
        logit = np.log(p / (1 - p)) + _FINDING_AGE_LOGIT.get(name, 0.0) * decades
        logit = logit + np.array([_FINDING_RACE_LOGIT.get((r, name), 0.0) for r in race])
        positive = rng.random(len(studies)) < 1.0 / (1.0 + np.exp(-logit))
        studies[name] = positive.astype(float)
        if name != "Support Devices":
            pathology |= positive
    studies["No Finding"] = (~pathology).astype(float)


def _add_breast_density(studies: pd.DataFrame, rng: np.random.Generator) -> None:
    """Add BI-RADS density A-D: denser when younger and leaner, weakly dependent on race."""
    age = studies["age"].to_numpy(dtype=float)
    bmi = studies["_bmi"].to_numpy(dtype=float)
    race = studies["_race"].to_numpy()
    latent = (-0.045 * (age - 57.0) - 0.06 * (bmi - 27.5)
              + _per_race(_DENSITY_RACE_SHIFT, race, 0.0) + rng.normal(0.0, 1.0, len(studies)))
    # Cut points give roughly 10/40/40/10 % for A/B/C/D.
    category = np.digitize(latent, [-1.45, 0.0, 1.45])
    studies["breast_density"] = np.array(labels.BREAST_DENSITY)[category]


def sample_population(n_patients: int, modality: str,
                      seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the patients and studies tables of a synthetic cohort, without images.

    The same tables (same seed) are what ``generate_cohort`` writes as patients.csv and
    studies.csv. Patients: PatientID, race, ethnicity, sex, bmi. Studies: PatientID,
    StudyInstanceUID, age, plus the 14 findings (cxr) or breast_density (mammo).
    """
    patients, studies = sample_records(n_patients, modality, seed)
    return (patients.loc[:, list(PATIENT_COLUMNS)].copy(),
            studies.loc[:, list(study_columns(modality))].copy())
