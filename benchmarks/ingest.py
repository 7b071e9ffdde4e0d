"""DICOM files per second: readrace's sharded ingestion against a plain pydicom loop.

Usage:  python benchmarks/ingest.py [--patients 300] [--shards 2] [--workers 2] [--size 64]
            [--repeats 5]

Generates a synthetic chest-radiograph cohort from both sites (half of the files
uncompressed, half JPEG 2000 Lossless), then times over the same files:

- baseline: a plain single-process loop, ``pydicom.dcmread(path).pixel_array`` per file
  (decoding only: no rescale, no VOI, no joins, no resize, no output);
- the same loop followed by readrace's antialiased resize to the cache size, the loop
  ``benchmarks/ingest_fullsize.py`` compares against (the same output resolution as readrace);
- readrace, 1 shard: ``readrace.ingest.ingest_shard`` in this process (decode, modality and
  VOI LUTs, join with the tables, exclusions, resize, pseudonyms), as one ingestion job does;
- readrace, sharded: the same shards run as ``--workers`` parallel processes, as Snakemake
  runs the ``ingest_shard`` jobs on one machine (job start-up is not counted here).

The variants take turns, ``--repeats`` times, and the median of each is reported, so that
the CPU steal of a shared machine weighs on all alike. Every process runs torch with 1 thread,
as a Snakemake ingestion job has 1 thread. Prints files per second for each and the ratios
to the baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import torch

from readrace.ingest.adapters import make_adapter
from readrace.ingest.listing import list_files
from readrace.ingest.preprocess import resize_square
from readrace.ingest.shard import ingest_shard
from readrace.synthetic import CohortSpec, generate_cohort


def plain_loop(root: Path, paths: list[str], size: int | None = None) -> int:
    """Decode every file (and resize it to ``size`` when given); skip what fails."""
    decoded = 0
    for path in paths:
        try:
            pixels = pydicom.dcmread(root / path).pixel_array
        except Exception:  # noqa: BLE001 - the baseline skips what it cannot read
            continue
        if size is not None and pixels.ndim == 2:
            resize_square(pixels[None].astype(np.float32), size)
        decoded += 1
    return decoded


def setup_process() -> None:
    torch.set_num_threads(1)


def run_shard(root: str, paths: list[str], size: int) -> int:
    adapter = make_adapter("synthetic", root, {})
    result = ingest_shard(adapter, paths, "cxr", {"size": size}, "benchmark-salt", progress=False)
    return len(result.rows)


def timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300, help="patients per site")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    setup_process()
    warnings.simplefilter("ignore")  # pydicom's warnings on the cohort's broken files, in the baseline

    with tempfile.TemporaryDirectory() as tmp:
        roots = []
        for site in ("A", "B"):
            root = Path(tmp) / f"cxr-{site}"
            generate_cohort(CohortSpec("cxr", site=site, n_patients=args.patients, seed=1), root, progress=False)
            roots.append(root)

        jobs = []  # (root, paths of one shard)
        n_files = 0
        for root in roots:
            files = list_files(make_adapter("synthetic", root, {}), "cxr", args.shards, "benchmark-salt")
            n_files += len(files)
            for shard in range(args.shards):
                jobs.append((root, files.loc[files["shard"] == shard, "path"].tolist()))

        # Warm the page cache and the imports so that no variant pays for the first read.
        for root, paths in jobs:
            plain_loop(root, paths[:20])

        times: dict[str, list[float]] = {"baseline": [], "resized": [], "single": [], "sharded": []}
        with ProcessPoolExecutor(max_workers=args.workers, initializer=setup_process) as pool:
            list(pool.map(run_shard, [str(jobs[0][0])] * args.workers, [jobs[0][1][:5]] * args.workers,
                          [args.size] * args.workers))  # start and warm the workers
            for _ in range(args.repeats):
                times["baseline"].append(sum(timed(plain_loop, root, paths)[0] for root, paths in jobs))
                times["resized"].append(sum(timed(plain_loop, root, paths, args.size)[0] for root, paths in jobs))
                times["single"].append(sum(timed(run_shard, str(root), paths, args.size)[0] for root, paths in jobs))
                start = time.perf_counter()
                list(pool.map(run_shard, [str(r) for r, _ in jobs], [p for _, p in jobs], [args.size] * len(jobs)))
                times["sharded"].append(time.perf_counter() - start)
        baseline, resized, single, sharded = (statistics.median(times[k]) for k in times)

    print(f"{n_files} DICOM files (2 sites, {args.shards} shards per site), cache size {args.size}px, "
          f"{os.cpu_count()} CPUs, median of {args.repeats} interleaved runs")
    print(f"{'variant':<44}{'files/s':>10}{'vs baseline':>14}")
    for name, seconds in (
        ("baseline: plain pydicom loop, 1 process", baseline),
        ("plain loop + antialiased resize, 1 process", resized),
        ("readrace ingest_shard, 1 process", single),
        (f"readrace sharded, {args.workers} parallel processes", sharded),
    ):
        print(f"{name:<44}{n_files / seconds:>10.1f}{baseline / seconds:>13.2f}x")


if __name__ == "__main__":
    main()
