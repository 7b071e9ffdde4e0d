"""Acquisition by manufacturer within a dataset: which rows a model trained on one
manufacturer's images sees, and how a manufacturer is named in a model id.

A model id holds one folder per coordinate, so a manufacturer (``GE MEDICAL SYSTEMS``) is
spelled by its slug (``ge-medical-systems``) in the retrain subset ``manufacturer-{slug}``;
the config keeps the name the manifest's ``manufacturer`` column spells, and the training job
selects its rows by that name. Testing needs no selection: the model predicts the whole test
split and is scored within each manufacturer's rows (the ``manufacturer`` stratifier of
:func:`readrace.confounders.strata.stratify`, the same patient bootstrap).
"""

from __future__ import annotations

import re

import pandas as pd

from readrace.data.subsets import Subset

#: Retrain subsets ``manufacturer-{slug}``.
PREFIX = "manufacturer-"
SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"
SUBSET_PATTERN = PREFIX + SLUG


def slug(name: str) -> str:
    """The folder-safe spelling of a manufacturer name: lower case, runs of anything but
    letters and digits as one hyphen (``Philips Medical Systems`` -> ``philips-medical-systems``)."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


def subset_name(name: str) -> str:
    """The retrain subset of the images of manufacturer ``name``."""
    return PREFIX + slug(name)


def is_manufacturer_subset(subset: str) -> bool:
    return re.fullmatch(SUBSET_PATTERN, subset) is not None


def manufacturer_rows(manifest: pd.DataFrame, split: str, manufacturer: str, *, dataset: str) -> Subset:
    """The rows of ``split`` written by ``manufacturer``.

    A manufacturer the manifest does not name, or whose images miss from ``split``, is a
    ValueError naming it, the dataset and the manufacturers present (a config typo would
    otherwise train on nothing)."""
    if "manufacturer" not in manifest:
        raise ValueError(f"results/{dataset}/manifest.parquet has no manufacturer column")
    present = sorted(str(m) for m in manifest["manufacturer"].dropna().unique())
    if manufacturer not in present:
        raise ValueError(
            f"manufacturers.{dataset}: manufacturer {manufacturer!r} is not in results/{dataset}/manifest.parquet; "
            f"its manufacturers are: {', '.join(repr(m) for m in present) or 'none recorded'}"
        )
    subset = Subset.of(split, {"manufacturer": [manufacturer]})
    if not subset.mask(manifest).any():
        raise ValueError(f"manufacturers.{dataset}: manufacturer {manufacturer!r} has no image in the {split} split")
    return subset
