"""The values of the plain data elements ingestion reads, converted from their bytes directly.

Reading a header attribute through pydicom (``ds.get("Rows")``) costs 10-30 us: keyword
lookup, the conversion hooks, value validation. Ingestion reads about forty per file, which on
a small radiograph is as much time as parsing and decoding the whole file. The attributes it
reads are nearly all of five value representations whose encoding is fixed by PS3.5 6.2 and
that no character set affects: US (binary), IS, DS, CS and UI (ASCII text, ``\\``-separated
values, padded with spaces or, for UI, a NUL). :func:`element_value` converts those from the
raw element's bytes; anything else (another VR, bytes that do not parse, an element pydicom
has already converted) is left to pydicom, so that the result never differs from ``ds.get``
but in type (``int``, ``float``, ``str`` or a list of them for ``IS``, ``DSfloat``, ``str``
or a ``MultiValue``). The tests compare the two on pydicom's corpus.
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

__all__ = ["element_value", "int_value"]

_TEXT_VRS = frozenset({"IS", "DS", "CS", "UI"})
_PLAIN_VRS = _TEXT_VRS | {"US"}
_UNPARSED = object()
_TAGS: dict[str, tuple[int, str] | None] = {}


def element_value(ds: Dataset, keyword: str) -> Any:
    """``ds.get(keyword)``, for the top level of ``ds``, converted directly when its VR is
    US, IS, DS, CS or UI. Raises what ``ds.get`` raises on a malformed element."""
    entry = _TAGS.get(keyword, _UNPARSED)
    if entry is _UNPARSED:
        entry = _TAGS[keyword] = _plain_tag(keyword)
    if entry is None:
        return ds.get(keyword)
    tag, dictionary_vr = entry
    element = ds.get_item(tag, keep_deferred=True)
    if element is None:
        return None
    if not isinstance(element, RawDataElement) or element.value is None:
        return ds.get(keyword)
    vr = element.VR or dictionary_vr
    value = _parse(element.value, vr, element.is_little_endian) if vr in _PLAIN_VRS else _UNPARSED
    return ds.get(keyword) if value is _UNPARSED else value


def int_value(ds: Dataset, keyword: str) -> int | None:
    """The (first) value of ``keyword`` as an int; None when absent, empty, malformed or not
    an integer."""
    try:
        value = element_value(ds, keyword)
    except Exception:  # noqa: BLE001 - a malformed raw element fails on first access
        return None
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None or (isinstance(value, str | bytes) and not value.strip()):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _plain_tag(keyword: str) -> tuple[int, str] | None:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    vr = dictionary_VR(tag)
    return (tag, vr) if vr in _PLAIN_VRS else None


def _parse(raw: bytes, vr: str, little_endian: bool) -> Any:
    if vr == "US":
        if len(raw) % 2:
            return _UNPARSED
        if not raw:
            return None
        values = struct.unpack(f"{'<' if little_endian else '>'}{len(raw) // 2}H", raw)
        return values[0] if len(values) == 1 else list(values)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return _UNPARSED
    if "_" in text:  # Python's int() and float() accept "1_000"; DICOM does not
        return _UNPARSED
    items = [item.strip(" \x00") for item in text.split("\\")]
    if vr in ("IS", "DS"):
        if not any(items):
            return ""
        try:
            numbers = [int(item) if vr == "IS" else float(item) for item in items]
        except ValueError:  # "1.0" as IS, an empty value among others: pydicom's rules apply
            return _UNPARSED
        return numbers[0] if len(numbers) == 1 else numbers
    return items[0] if len(items) == 1 else items
