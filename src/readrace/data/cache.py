"""A dataset's descriptor (``results/{dataset}/dataset.json``) and its cache's digest.

The gather job writes the descriptor; the stages after it read a dataset through it::

    {"format": 1, "modality": "cxr", "n_images": 1234, "n_patients": 321,
     "cache": {"file": "cache/images.npy", "shape": [1234, 64, 64], "dtype": "float16",
               "sha256": "<hex digest of the cache's pixel bytes in row order>"},
     "units": {"patient": "patient", "study": "study"}}

``cache.file`` is relative to the descriptor's folder. ``cache.sha256`` is the SHA-256 of the
array's bytes in row order (the C-order data after the ``.npy`` header), computed while the
gather job writes the cache (:func:`write_cache`), so that it costs no extra pass;
:func:`cache_digest` recomputes it from a cache on disk. ``units`` says what the manifest's
``patient_id`` and ``study_id`` really identify, which is not always their name: NLST's study
key is the participant (``"study": "patient"``), and RSPECT without a patient column keys
patients by study (``"patient": "study"``). Each adapter says so
(:meth:`readrace.ingest.adapters.DatasetAdapter.units`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

DESCRIPTOR_FORMAT = 1
#: The id kinds a unit can be.
UNIT_KINDS: tuple[str, ...] = ("patient", "study")
#: Units of a dataset whose ids are what they are called.
DEFAULT_UNITS: dict[str, str] = {"patient": "patient", "study": "study"}
#: Rows hashed and copied at a time: bounded memory whatever the size of a shard.
_BLOCK_ROWS = 2048


class DescriptorError(ValueError):
    """A dataset descriptor that is not what this module writes."""


def check_units(units: Mapping[str, str]) -> dict[str, str]:
    """``units`` as a plain dict, checked: keys and values both among :data:`UNIT_KINDS`."""
    units = dict(units)
    if set(units) != set(UNIT_KINDS) or not set(units.values()) <= set(UNIT_KINDS):
        raise DescriptorError(f"units must map {' and '.join(UNIT_KINDS)} to one of them, not {units}")
    return {kind: units[kind] for kind in UNIT_KINDS}


def write_units(path: str | Path, units: Mapping[str, str]) -> None:
    """The units alone, as the listing job hands them to the gather job."""
    Path(path).write_text(json.dumps(check_units(units)) + "\n")


def read_units(path: str | Path) -> dict[str, str]:
    return check_units(json.loads(Path(path).read_text()))


def _blocks(images: np.ndarray) -> Iterable[np.ndarray]:
    for start in range(0, images.shape[0], _BLOCK_ROWS):
        yield images[start : start + _BLOCK_ROWS]


def write_cache(path: str | Path, shards: Iterable[np.ndarray], shape: tuple[int, ...], dtype: Any) -> str:
    """Write the cache array (``shape``, ``dtype``, memory-mappable ``.npy``) from ``shards``,
    row blocks in order, hashing them as they are copied; return the hex SHA-256 of the
    pixel bytes in row order (what :func:`cache_digest` gives for the written file)."""
    cache = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))
    digest = hashlib.sha256()
    offset = 0
    for shard in shards:
        for block in _blocks(shard):
            block = np.ascontiguousarray(block, dtype=cache.dtype)
            cache[offset : offset + block.shape[0]] = block
            digest.update(block.data)
            offset += block.shape[0]
    if offset != shape[0]:
        raise ValueError(f"{path}: {offset} rows written into a cache of {shape[0]}")
    cache.flush()
    del cache
    return digest.hexdigest()


def cache_digest(images: np.ndarray | str | Path) -> str:
    """The hex SHA-256 of a cache's pixel bytes in row order (an array, or a ``.npy`` file)."""
    if not isinstance(images, np.ndarray):
        images = np.load(images, mmap_mode="r")
    digest = hashlib.sha256()
    for block in _blocks(images):
        digest.update(np.ascontiguousarray(block).data)
    return digest.hexdigest()


def dataset_descriptor(
    modality: str,
    n_images: int,
    n_patients: int,
    cache_file: str,
    shape: tuple[int, ...],
    dtype: Any,
    sha256: str,
    units: Mapping[str, str],
) -> dict[str, Any]:
    """The descriptor as :func:`write_descriptor` writes it (the module docstring's shape)."""
    return {
        "format": DESCRIPTOR_FORMAT,
        "modality": modality,
        "n_images": int(n_images),
        "n_patients": int(n_patients),
        "cache": {"file": cache_file, "shape": [int(n) for n in shape], "dtype": np.dtype(dtype).name, "sha256": sha256},
        "units": check_units(units),
    }


def _check(descriptor: Any, where: str) -> dict[str, Any]:
    problems = []
    if not isinstance(descriptor, dict):
        raise DescriptorError(f"{where}: not a JSON object")
    if descriptor.get("format") != DESCRIPTOR_FORMAT:
        problems.append(f"format is {descriptor.get('format')!r}, this readrace reads {DESCRIPTOR_FORMAT}")
    for key, kind in (("modality", str), ("n_images", int), ("n_patients", int), ("cache", dict), ("units", dict)):
        if not isinstance(descriptor.get(key), kind):
            problems.append(f"{key} is missing or not a {kind.__name__}")
    cache = descriptor.get("cache")
    if isinstance(cache, dict):
        for key, kind in (("file", str), ("shape", list), ("dtype", str), ("sha256", str)):
            if not isinstance(cache.get(key), kind):
                problems.append(f"cache.{key} is missing or not a {kind.__name__}")
        if isinstance(cache.get("shape"), list) and isinstance(descriptor.get("n_images"), int):
            if not cache["shape"] or cache["shape"][0] != descriptor["n_images"]:
                problems.append(f"cache.shape {cache['shape']} does not start with n_images {descriptor['n_images']}")
    if isinstance(descriptor.get("units"), dict):
        try:
            check_units(descriptor["units"])
        except DescriptorError as error:
            problems.append(str(error))
    if problems:
        raise DescriptorError(f"{where}: " + "; ".join(problems))
    return descriptor


def write_descriptor(path: str | Path, descriptor: Mapping[str, Any]) -> None:
    """Write a descriptor (checked) as indented JSON."""
    descriptor = _check(dict(descriptor), str(path))
    Path(path).write_text(json.dumps(descriptor, indent=2) + "\n")


def read_descriptor(path: str | Path) -> dict[str, Any]:
    """Read and check a descriptor; :class:`DescriptorError` names the file and the problem."""
    try:
        descriptor = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DescriptorError(f"{path}: cannot read a dataset descriptor: {error}") from error
    return _check(descriptor, str(path))


def descriptor_cache_path(path: str | Path, descriptor: Mapping[str, Any]) -> Path:
    """Where the cache of the descriptor at ``path`` is (``cache.file`` is relative to it)."""
    return Path(path).parent / descriptor["cache"]["file"]
