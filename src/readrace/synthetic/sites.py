"""Acquisition profiles ("sites") of the synthetic cohort and their stored-value maps.

A site fixes everything a scanner and a PACS decide: the DICOM modality and SOP class, the
pixel grid, bit depth, photometric interpretation, rescale, windowing and transfer syntax.
Two chest-radiograph sites differ in every one of those, so that external validation across
sites exercises the decoder as well as the model.

The stored-value maps are documented and exact, because tests elsewhere check that the DICOM
decoder recovers the intended intensity:

* radiographs and mammograms: ``stored = round(stored_low + (stored_high - stored_low) * truth)``
  with ``truth`` in [0, 1] (higher = denser = brighter on a MONOCHROME2 display); for
  MONOCHROME1 the stored value is then inverted, ``stored = 2**bits_stored - 1 - stored``.
  The modality value is ``rescale_slope * stored + rescale_intercept``.
* CT: ``truth`` is in Hounsfield units and ``stored = round((truth - rescale_intercept) /
  rescale_slope)``, stored as signed 16-bit integers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pydicom import uid


@dataclass(frozen=True)
class SiteProfile:
    """One acquisition profile: what a given scanner at a given hospital writes."""

    modality: str  # readrace modality: "cxr", "ct", "mammo"
    site: str
    dicom_modality: str  # (0008,0060): DX, CR, CT, MG
    sop_class_uid: str
    manufacturer: str
    model_name: str
    institution: str
    rows: int
    cols: int
    pixel_spacing_mm: float
    bits_stored: int
    photometric: str
    rescale_slope: float
    rescale_intercept: float
    transfer_syntax: str
    window: bool  # write a VOI window covering the full stored range
    stored_low: int = 0  # stored value of truth 0 (before MONOCHROME1 inversion)
    stored_high: int = 0  # stored value of truth 1
    signed: bool = False  # PixelRepresentation 1 (CT)
    # Patient positioning relative to the detector, in mm, and geometric magnification:
    # site B images the same anatomy a little lower, off-centre and larger.
    shift_mm: tuple[float, float] = (0.0, 0.0)  # (x, y) of the image centre in body mm
    magnification: float = 1.0
    # CT only: slices per series and their spacing.
    n_slices: int = 1
    slice_mm: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        """The (rows, cols) pixel grid of every image of this site."""
        return (self.rows, self.cols)

    @property
    def max_stored(self) -> int:
        """Largest stored value of an unsigned image, ``2**bits_stored - 1``."""
        return (1 << self.bits_stored) - 1


SITES: dict[str, dict[str, SiteProfile]] = {
    "cxr": {
        "A": SiteProfile(
            modality="cxr",
            site="A",
            dicom_modality="DX",
            sop_class_uid=uid.DigitalXRayImageStorageForPresentation,
            manufacturer="Northwind Medical",
            model_name="NW-DR 4000",
            institution="Lakeside University Hospital",
            rows=256,
            cols=256,
            pixel_spacing_mm=1.4,
            bits_stored=12,
            photometric="MONOCHROME2",
            rescale_slope=1.0,
            rescale_intercept=0.0,
            transfer_syntax=uid.ExplicitVRLittleEndian,
            window=True,
            stored_low=80,
            stored_high=4000,
        ),
        "B": SiteProfile(
            modality="cxr",
            site="B",
            dicom_modality="CR",
            sop_class_uid=uid.ComputedRadiographyImageStorage,
            manufacturer="Contoso Imaging",
            model_name="CX-Reader 2",
            institution="Riverbend Community Hospital",
            rows=240,
            cols=200,
            pixel_spacing_mm=1.6,
            bits_stored=10,
            photometric="MONOCHROME1",
            rescale_slope=2.0,
            rescale_intercept=-100.0,
            transfer_syntax=uid.JPEG2000Lossless,
            window=False,
            stored_low=30,
            stored_high=990,
            shift_mm=(6.0, 18.0),
            magnification=1.06,
        ),
    },
    "ct": {
        "A": SiteProfile(
            modality="ct",
            site="A",
            dicom_modality="CT",
            sop_class_uid=uid.CTImageStorage,
            manufacturer="Northwind Medical",
            model_name="NW-CT 64",
            institution="Lakeside University Hospital",
            rows=64,
            cols=64,
            pixel_spacing_mm=6.0,
            bits_stored=16,
            photometric="MONOCHROME2",
            rescale_slope=1.0,
            rescale_intercept=-1024.0,
            transfer_syntax=uid.RLELossless,
            window=False,
            signed=True,
            n_slices=16,
            slice_mm=10.0,
        ),
    },
    "mammo": {
        "A": SiteProfile(
            modality="mammo",
            site="A",
            dicom_modality="MG",
            sop_class_uid=uid.DigitalMammographyXRayImageStorageForPresentation,
            manufacturer="Northwind Medical",
            model_name="NW-Mammo 3",
            institution="Lakeside Breast Center",
            rows=192,
            cols=160,
            pixel_spacing_mm=1.2,
            bits_stored=12,
            photometric="MONOCHROME2",
            rescale_slope=1.0,
            rescale_intercept=0.0,
            transfer_syntax=uid.ExplicitVRLittleEndian,
            window=True,
            stored_low=60,
            stored_high=4020,
        ),
    },
}


#: The second manufacturer of a site (CohortSpec.second_manufacturer): another vendor's
#: detector at the same hospital, with its own bit depth, photometric interpretation,
#: transfer syntax and patient positioning, on the same pixel grid (so that the planted class
#: patterns, fixed on the grid, are the same). Its stored range is the base's share of its
#: own bit depth, so that a correct decoder brings both to the same intensities: what differs
#: after decoding is the positioning. CT keeps its grid and HU map: only the names and the
#: rescale intercept differ.
SECOND_MANUFACTURER = "Fabrikam Diagnostics"


def second_manufacturer(profile: SiteProfile) -> SiteProfile:
    """``profile`` as the second manufacturer of its site writes it."""
    names = {"manufacturer": SECOND_MANUFACTURER, "model_name": f"FD-{profile.dicom_modality} 900"}
    if profile.signed:
        return replace(profile, **names, rescale_intercept=-1000.0)
    bits = 14 if profile.bits_stored != 14 else 12
    scale = ((1 << bits) - 1) / profile.max_stored
    inverted = "MONOCHROME2" if profile.photometric == "MONOCHROME1" else "MONOCHROME1"
    return replace(profile, **names, bits_stored=bits, photometric=inverted,
                   stored_low=round(profile.stored_low * scale), stored_high=round(profile.stored_high * scale),
                   rescale_slope=1.0, rescale_intercept=0.0, transfer_syntax=uid.ExplicitVRLittleEndian,
                   shift_mm=(profile.shift_mm[0] - 4.0, profile.shift_mm[1] - 8.0),
                   magnification=profile.magnification * 0.97)


def get_site(modality: str, site: str) -> SiteProfile:
    """Return the profile of ``site`` for ``modality``; ValueError names what is unknown."""
    if modality not in SITES:
        raise ValueError(
            f"modality {modality!r} has no synthetic generator; expected one of "
            f"{', '.join(SITES)}"
        )
    if site not in SITES[modality]:
        raise ValueError(
            f"site {site!r} is not defined for modality {modality!r}; expected one of "
            f"{', '.join(SITES[modality])}"
        )
    return SITES[modality][site]


def stored_from_truth(profile: SiteProfile, truth: np.ndarray) -> np.ndarray:
    """Quantise an intended-intensity image to the stored pixel values of ``profile``.

    ``truth`` is in [0, 1] for radiographs and mammograms and in HU for CT (see the module
    docstring for the exact maps). Returns uint16 (or int16 for CT).
    """
    truth = np.asarray(truth, dtype=np.float64)
    if profile.signed:
        stored = np.rint((truth - profile.rescale_intercept) / profile.rescale_slope)
        info = np.iinfo(np.int16)
        if stored.min() < info.min or stored.max() > info.max:
            raise ValueError("CT intensity outside the int16 stored range")
        return stored.astype(np.int16)
    if truth.min() < 0.0 or truth.max() > 1.0:
        raise ValueError("intended intensity must lie in [0, 1] before quantisation")
    span = profile.stored_high - profile.stored_low
    stored = np.rint(profile.stored_low + span * truth)
    if profile.photometric == "MONOCHROME1":
        stored = profile.max_stored - stored
    return stored.astype(np.uint16)
