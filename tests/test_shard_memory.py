"""An ingestion shard holds cache-size images, never every decoded frame at once: its peak
memory (traced allocations: numpy arrays and the files' bytes) does not grow with the number
of full-size files it decodes."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import make_dataset, save
from readrace.ingest.adapters import make_adapter
from readrace.ingest.shard import ingest_shard

ROWS, COLUMNS = 1200, 1000


def peak_of_shard(root: Path, paths: list[str]) -> int:
    adapter = make_adapter("generic", root, {"manifest": "manifest.csv"})
    tracemalloc.start()
    try:
        result = ingest_shard(adapter, paths, "cxr", {"size": 64}, "salt-for-tests", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.rows) == len(paths) and result.quarantine.empty
    return peak


def test_peak_memory_does_not_grow_with_the_number_of_full_size_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths, records = [], []
    for i in range(8):
        stored = rng.integers(0, 4096, size=(ROWS, COLUMNS)).astype(np.uint16)
        ds = make_dataset(stored, bits_stored=12, name=f"image-{i}", PatientID=f"P{i}",
                          WindowCenter=2048, WindowWidth=4096)
        path = f"images/{i}.dcm"
        (tmp_path / "images").mkdir(exist_ok=True)
        save(ds, tmp_path / path)
        paths.append(path)
        study = ds.StudyInstanceUID
        records.append({"path": path, "patient": f"P{i}", "study": study, "race": "White", "sex": "F", "age": 50})
    pd.DataFrame(records).to_csv(tmp_path / "manifest.csv", index=False)

    frame = ROWS * COLUMNS * 4  # one decoded frame as float32
    one, eight = peak_of_shard(tmp_path, paths[:1]), peak_of_shard(tmp_path, paths)
    assert one >= frame  # the measure sees the decode
    # Holding the decoded frames would add 7 frames; the cache-size images add 7 x 8 KiB.
    assert eight < one + frame / 4, (one, eight)
