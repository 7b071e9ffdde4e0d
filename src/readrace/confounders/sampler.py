"""The equal-distribution resampler (chexploration's protocol, the paper's "equal disease
distribution" retrain): the training rows drawn again, with replacement, so that

1. every race is equally frequent;
2. within each race, the disease prevalence is the same (the pooled prevalence);
3. within each race x disease cell, the age-band distribution is the same (the pooled
   distribution of that disease status).

So the target probability of a (race, disease, age band) cell is
``1/R x P(disease) x P(age band | disease)``, the pooled probabilities taken from the rows
themselves. Each cell gets its quota of the draw (its target share, rounded), drawn
uniformly with replacement from its rows. A cell that a race lacks cannot be drawn: its
target mass goes to that race's other age bands of the same disease status (or, lacking a
whole status, to its other status), and the achieved table (:func:`achieved_distribution`)
shows the difference. The draw is seeded; its size defaults
to the number of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from readrace.confounders.strata import band_labels

#: Columns of the achieved-distribution table (sampler.csv).
ACHIEVED_COLUMNS: tuple[str, ...] = ("distribution", "race", "disease", "age_band", "target", "before", "achieved", "rows")


@dataclass(frozen=True)
class EqualDistribution:
    """Resample to equal race, disease-within-race and age-within-race-x-disease distributions.

    ``disease``: the manifest column of the disease status (a row is diseased when it is not
    ``healthy_value``; default "No Finding" == 1 is healthy). ``age_bands``: edges of the age
    bands. ``seed``: the draw's seed.
    """

    disease: str = "No Finding"
    healthy_value: float = 1.0
    age_bands: tuple[float, ...] = (40.0, 50.0, 60.0, 70.0)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"sampler": "equal-distribution", "disease": self.disease, "healthy_value": self.healthy_value,
                "age_bands": list(self.age_bands), "seed": self.seed}

    def cells(self, rows: pd.DataFrame, race: str = "race") -> pd.DataFrame:
        """race, disease (``disease``/``healthy``) and age band of each row."""
        if self.disease not in rows:
            raise KeyError(f"equal-distribution sampler: the disease column {self.disease!r} is not in the manifest")
        status = np.where(pd.to_numeric(rows[self.disease], errors="coerce") == self.healthy_value, "healthy", "disease")
        names = np.array(band_labels(self.age_bands), dtype=object)
        age = pd.to_numeric(rows["age"], errors="coerce").to_numpy(dtype=float)
        band = np.where(np.isnan(age), "missing", names[np.digitize(np.nan_to_num(age), self.age_bands)])
        return pd.DataFrame({"race": rows[race].to_numpy(), "disease": status, "age_band": band}, index=rows.index)

    def weights(self, rows: pd.DataFrame) -> np.ndarray:
        """Each row's probability of being drawn (they sum to 1).

        A cell's target is renormalised level by level where a race lacks cells: the age
        bands a race x disease cell has share P(age | disease) among themselves, the
        disease statuses a race has share P(disease), so a missing age band distorts
        neither the race shares nor the disease prevalence within race."""
        cells = self.cells(rows)
        races = sorted(cells["race"].unique())
        p_disease = cells["disease"].value_counts(normalize=True)
        p_age = cells.groupby("disease")["age_band"].value_counts(normalize=True)
        size = cells.groupby(["race", "disease", "age_band"]).size()
        present = size.index.to_frame(index=False)
        present["p_age"] = [p_age[(d, a)] for d, a in zip(present["disease"], present["age_band"])]
        present["p_age"] /= present.groupby(["race", "disease"])["p_age"].transform("sum")
        statuses = present[["race", "disease"]].drop_duplicates()
        statuses["p_disease"] = statuses["disease"].map(p_disease)
        statuses["p_disease"] /= statuses.groupby("race")["p_disease"].transform("sum")
        present = present.merge(statuses, on=["race", "disease"])
        target = present.set_index(["race", "disease", "age_band"])
        cell_target = target["p_age"] * target["p_disease"] / len(races)
        keys = pd.MultiIndex.from_frame(cells)
        return (cell_target.reindex(keys) / size.reindex(keys)).to_numpy()

    def resample(self, rows: pd.DataFrame, n: int | None = None) -> pd.DataFrame:
        """``n`` rows (default ``len(rows)``) drawn with replacement to the targets.

        Each (race, disease, age band) cell gets its quota of the draw, its target share of
        ``n`` rounded by largest remainder, drawn uniformly with replacement from the cell's
        rows. An i.i.d. weighted draw (chexploration's WeightedRandomSampler) misses the
        targets by its sampling noise, several percentage points on a few hundred rows;
        quotas miss them by rounding alone.
        """
        n = n or len(rows)
        rng = np.random.default_rng(self.seed)
        cells = self.cells(rows)
        keys = pd.MultiIndex.from_frame(cells)
        share = pd.Series(self.weights(rows), index=keys).groupby(level=[0, 1, 2]).sum()
        exact = share.to_numpy() * n
        quota = np.floor(exact).astype(int)
        remainder = exact - quota
        quota[np.argsort(-remainder, kind="stable")[: n - quota.sum()]] += 1
        positions = pd.Series(np.arange(len(rows)), index=keys)
        drawn = [rng.choice(positions.loc[[cell]].to_numpy(), size=k, replace=True)
                 for cell, k in zip(share.index, quota) if k]
        return rows.iloc[np.sort(np.concatenate(drawn))]


def achieved_distribution(before: pd.DataFrame, after: pd.DataFrame, sampler: EqualDistribution) -> pd.DataFrame:
    """The three distributions the sampler equalises: target, before and after resampling.

    ``race``: P(race); ``disease | race``: P(disease status | race); ``age | race, disease``:
    P(age band | race, disease status). Targets: 1/R, the pooled P(disease), the pooled
    P(age band | disease), all from ``before``.
    """
    cb, ca = sampler.cells(before), sampler.cells(after)
    races = sorted(cb["race"].unique())
    p_disease = cb["disease"].value_counts(normalize=True)
    p_age = cb.groupby("disease")["age_band"].value_counts(normalize=True)
    rows = []

    def share(cells: pd.DataFrame, mask: pd.Series, within: pd.Series) -> float:
        total = within.sum()
        return float((mask & within).sum() / total) if total else float("nan")

    for race in races:
        rows.append(("race", race, "", "", 1 / len(races), share(cb, cb["race"] == race, cb["race"].notna()),
                     share(ca, ca["race"] == race, ca["race"].notna()), int((ca["race"] == race).sum())))
        for disease in sorted(p_disease.index):
            in_b, in_a = cb["race"] == race, ca["race"] == race
            rows.append(("disease | race", race, disease, "", float(p_disease[disease]),
                         share(cb, cb["disease"] == disease, in_b), share(ca, ca["disease"] == disease, in_a),
                         int((in_a & (ca["disease"] == disease)).sum())))
            for band in sorted(p_age[disease].index):
                cell_b = in_b & (cb["disease"] == disease)
                cell_a = in_a & (ca["disease"] == disease)
                rows.append(("age | race, disease", race, disease, band, float(p_age[(disease, band)]),
                             share(cb, cb["age_band"] == band, cell_b), share(ca, ca["age_band"] == band, cell_a),
                             int((cell_a & (ca["age_band"] == band)).sum())))
    return pd.DataFrame(rows, columns=list(ACHIEVED_COLUMNS))


def sampler_of(settings: dict[str, Any], seed: int) -> EqualDistribution:
    """The sampler of the config's ``confounders.sampler`` block, drawn with ``seed``."""
    return EqualDistribution(disease=settings["disease"], healthy_value=float(settings["healthy_value"]),
                             age_bands=tuple(float(b) for b in settings["age_bands"]), seed=seed)


def distribution_of(rows: pd.DataFrame, sampler: EqualDistribution) -> pd.DataFrame:
    """The table of :func:`achieved_distribution` for rows that are not resampled."""
    return achieved_distribution(rows, rows, sampler)


__all__: Sequence[str] = ("EqualDistribution", "achieved_distribution", "sampler_of", "distribution_of")
