"""readrace.data.cache: the dataset descriptor and the cache's digest (known answers)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from readrace.data import cache as cache_module
from readrace.data.cache import (
    DescriptorError,
    cache_digest,
    dataset_descriptor,
    descriptor_cache_path,
    read_descriptor,
    read_units,
    write_cache,
    write_descriptor,
    write_units,
)


def test_write_cache_copies_the_shards_in_order_and_hashes_their_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_BLOCK_ROWS", 3)  # several blocks per shard
    rng = np.random.default_rng(0)
    shards = [rng.random((n, 4, 5)).astype(np.float16) for n in (7, 0, 4)]
    for i, shard in enumerate(shards):
        np.save(tmp_path / f"shard{i}.npy", shard)
    on_disk = [np.load(tmp_path / f"shard{i}.npy", mmap_mode="r") for i in range(3)]
    digest = write_cache(tmp_path / "images.npy", on_disk, (11, 4, 5), np.float16)
    written = np.load(tmp_path / "images.npy")
    expected = np.concatenate(shards)
    np.testing.assert_array_equal(written, expected)
    assert digest == hashlib.sha256(expected.tobytes()).hexdigest()
    assert cache_digest(tmp_path / "images.npy") == digest == cache_digest(expected)
    with pytest.raises(ValueError, match="10 rows written into a cache of 11"):
        write_cache(tmp_path / "short.npy", [on_disk[0], on_disk[2][:3]], (11, 4, 5), np.float16)


def test_descriptor_round_trips_in_the_documented_shape(tmp_path):
    descriptor = dataset_descriptor("ct", 12, 3, "cache/images.npy", (12, 8, 8), np.float16, "ab" * 32,
                                    {"study": "patient", "patient": "patient"})  # fmt: skip
    path = tmp_path / "dataset.json"
    write_descriptor(path, descriptor)
    assert json.loads(path.read_text()) == {
        "format": 1, "modality": "ct", "n_images": 12, "n_patients": 3,
        "cache": {"file": "cache/images.npy", "shape": [12, 8, 8], "dtype": "float16", "sha256": "ab" * 32},
        "units": {"patient": "patient", "study": "patient"},
    }  # fmt: skip
    assert read_descriptor(path) == descriptor
    assert descriptor_cache_path(path, descriptor) == tmp_path / "cache/images.npy"


def test_bad_descriptors_and_units_are_named(tmp_path):
    path = tmp_path / "dataset.json"
    good = dataset_descriptor("cxr", 2, 1, "cache/images.npy", (2, 4, 4), np.float16, "0" * 64, {"patient": "patient", "study": "study"})
    path.write_text(json.dumps({**good, "format": 2}))
    with pytest.raises(DescriptorError, match="dataset.json: format is 2"):
        read_descriptor(path)
    path.write_text(json.dumps({**good, "cache": {**good["cache"], "shape": [3, 4, 4]}}))
    with pytest.raises(DescriptorError, match="does not start with n_images 2"):
        read_descriptor(path)
    path.write_text("{not json")
    with pytest.raises(DescriptorError, match="cannot read a dataset descriptor"):
        read_descriptor(path)
    with pytest.raises(DescriptorError, match="units must map"):
        write_units(tmp_path / "units.json", {"patient": "series", "study": "study"})
    write_units(tmp_path / "units.json", {"study": "study", "patient": "study"})
    assert read_units(tmp_path / "units.json") == {"patient": "study", "study": "study"}
