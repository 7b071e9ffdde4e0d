"""The grammar of perturbation ids, without torch.

A perturbation id (``lpf-d10``, ``noise-0.1``, ...) is an experiment coordinate: it is checked
when the Snakefile validates the config, and built into a callable on the training device by
:func:`readrace.transforms.perturbations.parse_perturbation`. The parsing lives here, apart from the
tensor code, so that validating a config (at every Snakefile parse, dry runs included) does
not pay for importing torch. What each perturbation does, and in which units, is documented in
:mod:`readrace.transforms.perturbations`.

Ids must be written canonically so that one perturbation has one experiment coordinate:
integers without leading zeros, decimals without redundant zeros (``0.1``, ``2``; not
``0.10``, ``2.0``, ``.1``)::

    >>> parse_perturbation_id("bpf-d10-50")
    PerturbationId(name='bpf', params=(10, 50))
    >>> parse_perturbation_id("noise-0.1")
    PerturbationId(name='noise', params=(0.1,))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "GRID_CELLS", "KNOWN_FORMS", "LUNG_MASKED", "SALIENCY_MASKED", "PerturbationId", "format_decimal",
    "grid_bounds", "needs_masks", "parse_perturbation_id",
]

#: The id forms :func:`parse_perturbation_id` understands; ``{D}`` and ``{N}`` are positive
#: integers, ``{S}`` a positive decimal and ``{F}`` a decimal in (0, 1).
KNOWN_FORMS: tuple[str, ...] = (
    "none",
    "lpf-d{D}",
    "hpf-d{D}",
    "bpf-d{D1}-{D2}",
    "notch-d{D1}-{D2}",
    "res-{N}",
    "noise-{S}",
    "blur-{S}",
    "boneclip-{F}",
    "lung",
    "nonlung",
    "patch-{R}-{C}",
    "occlude-{R}-{C}",
    "occlude-salient",
)

#: Rows and columns of the localisation grid (the paper's 3x3 tiles): ``R`` and ``C`` are
#: 0, 1 or 2, row 0 at the top, column 0 at the left of the cached image.
GRID_CELLS = 3

#: Perturbations that read a mask per image, by the masks they read: the lung masks of the
#: dataset (``lung``, ``nonlung``), or a model's most salient region (``occlude-salient``).
LUNG_MASKED = frozenset({"lung", "nonlung"})
SALIENCY_MASKED = frozenset({"occlude-salient"})

_CELL = re.compile(r"([0-9]+)-([0-9]+)")

_INT = re.compile(r"[1-9][0-9]*")
# A canonical decimal: no sign, no exponent, no leading zeros, no trailing fractional zeros.
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")
_ANNULUS = re.compile(r"d([^-]*)-([^-]*)")


@dataclass(frozen=True)
class PerturbationId:
    """A parsed perturbation id: the perturbation's ``name`` (the part before the first
    ``-``, or ``none``) and its numeric ``params`` in the order the id spells them."""

    name: str
    params: tuple[int | float, ...] = ()


def format_decimal(value: float) -> str:
    """The canonical id spelling of a decimal parameter: ``0.1``, ``2``, ``1.5``, ``0.00001``."""
    # repr gives the shortest string that round-trips; Decimal writes it without exponent.
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _bad(pid: str, why: str) -> ValueError:
    return ValueError(
        f"invalid perturbation id {pid!r}: {why}. Known forms: {', '.join(KNOWN_FORMS)}"
    )


def _parse_int(pid: str, text: str, name: str) -> int:
    if not _INT.fullmatch(text):
        raise _bad(pid, f"{name} must be a positive integer without leading zeros, got {text!r}")
    return int(text)


def _parse_decimal(pid: str, text: str, name: str, below_one: bool = False) -> float:
    if not _DECIMAL.fullmatch(text):
        raise _bad(
            pid,
            f"{name} must be a plain decimal without redundant zeros (e.g. 0.1 or 2), got {text!r}",
        )
    value = float(text)
    if format_decimal(value) != text:  # more digits than a float holds
        raise _bad(pid, f"{name} must be written as {format_decimal(value)}")
    if value <= 0 or (below_one and value >= 1):
        bounds = "strictly between 0 and 1" if below_one else "positive"
        raise _bad(pid, f"{name} must be {bounds}, got {text}")
    return value


def parse_perturbation_id(pid: str) -> PerturbationId:
    """Check ``pid`` against :data:`KNOWN_FORMS` and return its name and parameters.

    Raises:
        TypeError: ``pid`` is not a string.
        ValueError: the id is malformed or out of range. The message names the id and
            lists :data:`KNOWN_FORMS`.
    """
    if not isinstance(pid, str):
        raise TypeError(f"a perturbation id is a string, got {type(pid).__name__}")
    if pid in ("none", "lung", "nonlung"):
        return PerturbationId(pid)
    if pid == "occlude-salient":
        return PerturbationId("occlude-salient")

    name, _, rest = pid.partition("-")
    if name in ("lpf", "hpf"):
        if not rest.startswith("d"):
            raise _bad(pid, f"expected {name}-d{{D}} with D the filter diameter")
        return PerturbationId(name, (_parse_int(pid, rest[1:], "D"),))
    if name in ("bpf", "notch"):
        match = _ANNULUS.fullmatch(rest)
        if match is None:
            raise _bad(pid, f"expected {name}-d{{D1}}-{{D2}} with D1 < D2 the annulus diameters")
        inner = _parse_int(pid, match[1], "D1")
        outer = _parse_int(pid, match[2], "D2")
        if inner >= outer:
            raise _bad(pid, f"D1 must be smaller than D2, got {inner} and {outer}")
        return PerturbationId(name, (inner, outer))
    if name == "res":
        return PerturbationId(name, (_parse_int(pid, rest, "N"),))
    if name in ("noise", "blur"):
        return PerturbationId(name, (_parse_decimal(pid, rest, "S"),))
    if name in ("patch", "occlude"):
        match = _CELL.fullmatch(rest)
        if match is None:
            raise _bad(pid, f"expected {name}-{{R}}-{{C}} with R, C the row and column of a 3x3 grid cell")
        cell = tuple(int(part) for part in match.groups())
        if any(k >= GRID_CELLS or str(k) != part for k, part in zip(cell, match.groups())):
            raise _bad(pid, f"R and C must be 0, 1 or 2 (a cell of the {GRID_CELLS}x{GRID_CELLS} grid), got {rest!r}")
        return PerturbationId(name, cell)
    if name == "boneclip":
        return PerturbationId(name, (_parse_decimal(pid, rest, "F", below_one=True),))
    raise _bad(pid, "unknown perturbation")


def needs_masks(pid: str) -> str | None:
    """Which masks the perturbation ``pid`` reads per image: ``"lung"`` (the dataset's lung
    mask cache), ``"saliency"`` (a model's most salient region), or None."""
    if pid in LUNG_MASKED:
        return "lung"
    if pid in SALIENCY_MASKED:
        return "saliency"
    return None


def grid_bounds(n: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` pixel range of each of the 3 grid cells along an axis of ``n`` pixels.

    Cell ``j`` owns the pixels whose centres lie in ``[j/3, (j+1)/3)`` of the axis (the rule
    the synthetic cohort plants its ``grid-R-C`` signal by), so the cells tile the whole image
    and no pixel is dropped: on 64 px rows 0-20, 21-42, 43-63 (21, 22, 21 px); on 224 px
    0-74, 75-148, 149-223 (75, 74, 75 px), where the paper's int(224/3) = 74 px tiles left the
    last 2 px out. A pixel centre never falls on a boundary (that would need 2jn/3 odd).
    """
    if n < GRID_CELLS:
        raise ValueError(f"an axis of {n} pixels cannot be cut into {GRID_CELLS} grid cells")
    # start_j = ceil(j n / 3 - 1/2), in integers.
    starts = [(2 * j * n + 2) // 6 for j in range(GRID_CELLS + 1)]
    return list(zip(starts[:-1], starts[1:]))
