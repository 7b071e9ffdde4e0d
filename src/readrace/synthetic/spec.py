"""What to generate: the planted signal (SignalSpec) and the dataset (CohortSpec).

Both are frozen dataclasses validated on construction, so an invalid cohort cannot exist;
``CohortSpec.from_options`` parses the ``synthetic`` options of ``config.yaml`` and names
the offending key in every error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from readrace import labels
from readrace.synthetic.sites import SITES

#: Highest spatial frequency a band may reach, in cycles per image: the 64x64 cache has
#: its Nyquist limit at 32 cycles/image, and a margin keeps the signal clear of it.
MAX_CYCLES = 28.0

#: Named band sets accepted by ``signal.bands`` in config.yaml.
BAND_PRESETS: dict[str, tuple[tuple[float, float], ...]] = {
    "low": ((2.0, 6.0),),
    "high": ((12.0, 24.0),),
    "all": ((2.0, 6.0), (12.0, 24.0)),
}

class SpecError(ValueError):
    """A ValueError that remembers which field was wrong, so from_options can name its key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


_GRID_REGION = re.compile(r"^grid-([0-2])-([0-2])$")


def parse_region(region: str) -> tuple[str, int, int]:
    """Split a region name into (kind, row, col); row and col are -1 unless kind is "grid".

    >>> parse_region("grid-0-2")
    ('grid', 0, 2)
    """
    if region in ("all", "lung", "nonlung"):
        return (region, -1, -1)
    match = _GRID_REGION.match(region) if isinstance(region, str) else None
    if match is None:
        raise SpecError(
            "region",
            f"signal region {region!r} is not one of 'all', 'lung', 'nonlung', "
            "'grid-R-C' (R, C in 0..2)"
        )
    return ("grid", int(match.group(1)), int(match.group(2)))


def _band_has_frequency(lo: float, hi: float) -> bool:
    """Whether some integer frequency (ky, kx) != 0 has lo <= |k| < hi."""
    k = np.arange(-int(MAX_CYCLES), int(MAX_CYCLES) + 1)
    radius = np.hypot(k[:, None], k[None, :])
    return bool(np.any((radius >= lo) & (radius < hi) & (radius > 0)))


@dataclass(frozen=True)
class SignalSpec:
    """The planted race signal: one fixed band-limited pattern per task class.

    Parameters
    ----------
    strength:
        Multiplier of the base amplitude; 0 plants nothing (negative control).
    bands:
        Radial spatial-frequency bands ``(lo, hi)``, half-open ``lo <= |k| < hi``, in cycles
        per image (per image side along each axis for non-square images). Non-overlapping,
        all below ``MAX_CYCLES``. Each band carries the same energy.
    region:
        Where the pattern lives: "all", "lung" (smoothed lung mask), "nonlung" (its
        complement) or "grid-R-C" (cell R, C of a 3x3 grid, 0-based, smooth edges).
    seed:
        Seeds the class patterns, independently of the cohort seed, so that datasets with
        different cohort seeds (e.g. two sites) share the same class patterns.
    """

    strength: float = 1.0
    bands: tuple[tuple[float, float], ...] = BAND_PRESETS["all"]
    region: str = "all"
    seed: int = 1234

    def __post_init__(self) -> None:
        if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float)):
            raise SpecError("strength", f"signal strength must be a number, got {self.strength!r}")
        if not np.isfinite(self.strength) or self.strength < 0:
            raise SpecError(
                "strength", f"signal strength must be finite and >= 0, got {self.strength}"
            )
        object.__setattr__(self, "strength", float(self.strength))
        object.__setattr__(self, "bands", _validate_bands(self.bands))
        parse_region(self.region)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise SpecError("seed", f"signal seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise SpecError("seed", f"signal seed must be >= 0, got {self.seed}")


def _validate_bands(bands: Any) -> tuple[tuple[float, float], ...]:
    """Normalise a preset name or a list of [lo, hi] pairs to sorted float tuples."""
    if isinstance(bands, str):
        if bands not in BAND_PRESETS:
            raise SpecError(
                "bands",
                f"signal bands {bands!r} is not a list of [lo, hi] pairs nor one of "
                f"{', '.join(BAND_PRESETS)}"
            )
        return BAND_PRESETS[bands]
    try:
        pairs = [tuple(pair) for pair in bands]
    except TypeError:
        raise SpecError(
            "bands", f"signal bands must be a list of [lo, hi] pairs, got {bands!r}"
        ) from None
    if not pairs:
        raise SpecError("bands", "signal bands must name at least one [lo, hi] band")
    out = []
    for pair in pairs:
        if len(pair) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) for v in pair
        ):
            raise SpecError("bands", f"signal bands: {pair!r} is not a [lo, hi] pair of numbers")
        lo, hi = float(pair[0]), float(pair[1])
        if not (0.0 <= lo < hi <= MAX_CYCLES):
            raise SpecError(
                "bands",
                f"signal bands: need 0 <= lo < hi <= {MAX_CYCLES:g} cycles/image, got "
                f"[{lo:g}, {hi:g}]"
            )
        if not _band_has_frequency(lo, hi):
            raise SpecError(
                "bands", f"signal bands: [{lo:g}, {hi:g}] contains no integer frequency"
            )
        out.append((lo, hi))
    out.sort()
    for (_, hi0), (lo1, _) in zip(out, out[1:]):
        if lo1 < hi0:
            raise SpecError("bands", f"signal bands overlap: {out!r}")
    return tuple(out)


_COHORT_KEYS = ("site", "patients", "seed", "broken_files", "write_truth", "signal", "bmi_by_race",
                "faint_findings", "atypical", "second_manufacturer")
_ATYPICAL_KEYS = ("patients", "artefact", "flip_label")


@dataclass(frozen=True)
class AtypicalSpec:
    """A few atypical patients, the known answer of the membership audit: ``patients`` of
    them (0: none, the default) get a bright square artefact of ``artefact`` times the value
    range in every image and, with ``flip_label``, a recorded race that is not the one their
    pixels carry. Models can only fit them by remembering them."""

    patients: int = 0
    artefact: float = 0.5
    flip_label: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.patients, bool) or not isinstance(self.patients, (int, np.integer)) or self.patients < 0:
            raise SpecError("atypical.patients", f"atypical.patients must be an integer >= 0, got {self.patients!r}")
        if isinstance(self.artefact, bool) or not isinstance(self.artefact, (int, float)) or not 0 <= self.artefact <= 1:
            raise SpecError("atypical.artefact", f"atypical.artefact must be a number in [0, 1], got {self.artefact!r}")
        if not isinstance(self.flip_label, bool):
            raise SpecError("atypical.flip_label", f"atypical.flip_label must be true or false, got {self.flip_label!r}")
_SIGNAL_KEYS = ("strength", "bands", "region", "seed")


@dataclass(frozen=True)
class CohortSpec:
    """One synthetic dataset: one modality at one acquisition site.

    ``generate_cohort(spec, out_dir)`` writes it. The same spec always produces the same
    bytes. Datasets meant as different hospitals should use different ``seed`` values
    (the seed draws the patients); ``signal.seed`` is what keeps their class patterns shared.
    """

    modality: str
    site: str = "A"
    n_patients: int = 100
    seed: int = 0
    signal: SignalSpec = field(default_factory=SignalSpec)
    broken_files: bool = True
    write_truth: bool = False
    #: Mean BMI per race (and ``sd``) replacing the default weak dependence, as sorted
    #: (key, value) pairs; None (default) keeps the default cohort's bytes.
    bmi_by_race: tuple[tuple[str, float], ...] | None = None
    #: A planted subgroup gap: ``(race, visibility)`` draws the visible findings of that
    #: race's radiographs at ``visibility`` (0..1) of their effect; None draws every image
    #: as before (the default cohort's bytes do not change).
    faint_findings: tuple[str, float] | None = None
    atypical: AtypicalSpec = field(default_factory=AtypicalSpec)
    #: Share of the patients (0..1) whose images a second manufacturer of the site writes
    #: (readrace.synthetic.sites.second_manufacturer); 0 (default) writes every image as before.
    second_manufacturer: float = 0.0

    def __post_init__(self) -> None:
        share = self.second_manufacturer
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise SpecError("second_manufacturer", f"second_manufacturer must be a share in [0, 1], got {share!r}")
        if self.bmi_by_race is not None:
            if isinstance(self.bmi_by_race, Mapping):
                object.__setattr__(self, "bmi_by_race", tuple(sorted(self.bmi_by_race.items())))
            for key, value in self.bmi_by_race:
                if key not in (*labels.RACE_CATEGORIES, "sd"):
                    raise SpecError("bmi_by_race", f"bmi_by_race: {key!r} is neither a race category nor sd")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                    raise SpecError("bmi_by_race", f"bmi_by_race.{key} must be a positive number, got {value!r}")
        if self.modality not in SITES:
            raise SpecError(
                "modality",
                f"modality {self.modality!r} has no synthetic generator; expected one of "
                f"{', '.join(SITES)}",
            )
        if self.site not in SITES[self.modality]:
            raise SpecError(
                "site",
                f"site {self.site!r} is not defined for modality {self.modality!r}; "
                f"expected one of {', '.join(SITES[self.modality])}",
            )
        for name in ("n_patients", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SpecError(name, f"{name} must be an integer, got {value!r}")
        if self.n_patients < 1:
            raise SpecError("n_patients", f"n_patients must be >= 1, got {self.n_patients}")
        if self.seed < 0:
            raise SpecError("seed", f"seed must be >= 0, got {self.seed}")
        if not isinstance(self.signal, SignalSpec):
            raise SpecError(
                "signal", f"signal must be a SignalSpec, got {type(self.signal).__name__}"
            )
        if self.faint_findings is not None:
            race, visibility = self.faint_findings
            if self.modality != "cxr":
                raise SpecError("faint_findings", "faint_findings needs chest radiographs (the findings are drawn there)")
            if race not in ("Asian", "Black", "White") or not 0 <= float(visibility) <= 1:
                raise SpecError("faint_findings", f"faint_findings needs a race and a visibility in [0, 1], got {self.faint_findings!r}")
        for name in ("broken_files", "write_truth"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(name, f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.modality == "mammo" and self.signal.region in ("lung", "nonlung"):
            raise SpecError(
                "signal.region",
                f"signal region {self.signal.region!r} needs a lung mask; mammograms have none",
            )

    @classmethod
    def from_options(cls, modality: str, options: Mapping[str, Any] | None) -> "CohortSpec":
        """Build a spec from the options of one synthetic dataset in config.yaml.

        Keys: ``site``, ``patients``, ``seed``, ``broken_files``, ``write_truth`` and
        ``signal`` (a mapping with ``strength``, ``bands`` -- a list of ``[lo, hi]`` or
        "low"/"high"/"all" --, ``region``, ``seed``). Missing keys take the defaults;
        unknown keys or bad values raise ValueError naming the key.
        """
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise ValueError(f"synthetic options must be a mapping, got {options!r}")
        _reject_unknown(options, _COHORT_KEYS, prefix="")
        signal_options = options.get("signal") or {}
        if not isinstance(signal_options, Mapping):
            raise ValueError(f"synthetic option 'signal' must be a mapping, got {signal_options!r}")
        _reject_unknown(signal_options, _SIGNAL_KEYS, prefix="signal.")

        atypical_options = options.get("atypical") or {}
        if not isinstance(atypical_options, Mapping):
            raise ValueError(f"synthetic option 'atypical' must be a mapping, got {atypical_options!r}")
        _reject_unknown(atypical_options, _ATYPICAL_KEYS, prefix="atypical.")
        try:
            atypical = AtypicalSpec(**dict(atypical_options))
        except SpecError as error:
            raise ValueError(f"synthetic option '{error.key}': {error}") from None
        try:
            signal = SignalSpec(**dict(signal_options))
        except SpecError as error:
            raise ValueError(f"synthetic option 'signal.{error.key}': {error}") from None
        # The config says "patients"; the dataclass field is n_patients.
        to_field = {"patients": "n_patients"}
        to_option = {v: k for k, v in to_field.items()}
        kwargs = {to_field.get(k, k): v for k, v in options.items() if k not in ("signal", "atypical")}
        faint = kwargs.get("faint_findings")
        if isinstance(faint, Mapping):
            kwargs["faint_findings"] = (faint.get("race"), float(faint.get("visibility", 0.2)))
        try:
            return cls(modality=modality, signal=signal, atypical=atypical, **kwargs)
        except SpecError as error:
            key = to_option.get(error.key, error.key)
            raise ValueError(f"synthetic option '{key}': {error}") from None


def _reject_unknown(options: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
    unknown = sorted(str(k) for k in options if k not in known)
    if unknown:
        raise ValueError(
            f"unknown synthetic option(s) {', '.join(prefix + k for k in unknown)}; "
            f"expected {', '.join(prefix + k for k in known)}"
        )
