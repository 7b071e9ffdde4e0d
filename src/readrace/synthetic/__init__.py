"""Synthetic DICOM cohorts with a planted, known race signal.

One call writes one dataset (one modality at one acquisition site) of real DICOM files,
population tables, lung masks and a truth table, so that every pipeline stage can be
checked against known answers::

    from readrace.synthetic import CohortSpec, SignalSpec, generate_cohort

    spec = CohortSpec("cxr", site="B", n_patients=50, seed=1,
                      signal=SignalSpec(strength=1.0, bands=((2.0, 6.0),)))
    truth = generate_cohort(spec, "data/synthetic/cxr-B")

Modules: ``spec`` (what to generate), ``sites`` (acquisition profiles and the stored-value
maps), ``population`` (patients, studies, confounders), ``anatomy`` (phantoms), ``signal``
(class patterns and regions), ``dicom_writer`` (Part 10 files), ``cohort`` (the driver).
"""

from readrace.synthetic.cohort import TRUTH_COLUMNS, generate_cohort
from readrace.synthetic.population import sample_population
from readrace.synthetic.sites import SITES, SiteProfile, get_site, stored_from_truth
from readrace.synthetic.spec import BAND_PRESETS, MAX_CYCLES, CohortSpec, SignalSpec

__all__ = [
    "BAND_PRESETS",
    "MAX_CYCLES",
    "SITES",
    "TRUTH_COLUMNS",
    "CohortSpec",
    "SignalSpec",
    "SiteProfile",
    "generate_cohort",
    "get_site",
    "sample_population",
    "stored_from_truth",
]
