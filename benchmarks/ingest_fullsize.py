"""Files per second at clinical image sizes: readrace's ingestion against a plain loop, per encoding.

Usage:  python benchmarks/ingest_fullsize.py [--files 8] [--rows 3000] [--columns 2500] [--size 320]
            [--workers 2] [--repeats 3] [--quick]

Generates ``--files`` synthetic chest radiographs of ``--rows`` x ``--columns`` pixels, 12-bit
values stored in uint16 (a smooth body with lungs, ribs and spine, fine texture and Gaussian
noise), and writes each one in four encodings, one file set per encoding:

- DICOM uncompressed (Explicit VR Little Endian), DX, MONOCHROME2, BitsStored 12, with a window;
- DICOM JPEG 2000 Lossless (pydicom's encoder, pylibjpeg-openjpeg);
- DICOM JPEG-LS Lossless (pydicom's encoder needs ``pip install pyjpegls``; skipped without it);
- 8-bit grayscale JPEG, quality 95 (the MIMIC-CXR-JPG and CheXpert case).

Writing the files is not timed. Then, for each encoding and over the same files:

- baseline: a plain single-process loop, ``pydicom.dcmread(path).pixel_array`` (DICOM) or
  ``np.asarray(PIL.Image.open(path))`` (JPEG), cast to float32 and resized to ``--size`` with
  readrace's antialiased resize (``readrace.ingest.preprocess.resize_square``); no LUTs, no
  joins, no output;
- readrace, 1 process: ``readrace.ingest.ingest_shard`` (generic adapter, a CSV manifest) in
  this process: decode, modality and VOI LUTs, joins, exclusions, resize, pseudonyms;
- readrace, ``--workers`` processes: the files split into that many shards, run in parallel
  worker processes (started and warmed before the timing, as Snakemake's job start-up is not
  counted here).

Every timed process runs torch with 1 thread (``torch.set_num_threads(1)``), as a Snakemake
ingestion job has 1 thread. The variants take turns (each encoding's three variants, then the
next repeat) and the median of ``--repeats`` runs is reported, so that CPU steal on a shared
machine weighs on all alike; the files are read once beforehand so that all find them in the
page cache. The baseline and readrace both decode with pydicom's first plugin, pylibjpeg
(openjpeg, libjpeg), which it tries before Pillow and pyjpegls (needed here only to encode).

Prints per encoding the file size, files per second of each variant and its ratio to the
baseline (readrace's include the fixed cost of a shard, its tables read and joined, which is
also printed: a real shard of thousands of files amortises it, a few files here do not), and the peak resident memory (VmHWM) of one shard over all the encoding's files,
measured in a fresh (spawned) process, beside its floor: the same process's peak before it
decodes anything (its imports). The readrace 1-process rates are per-core rates, for
projecting a dataset's ingestion time. ``--quick`` (600 x 500, 2 files, 1 repeat) only
checks that the script runs.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_encoder
from pydicom.uid import (
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    generate_uid,
)

from readrace.ingest.adapters import make_adapter
from readrace.ingest.preprocess import resize_square
from readrace.ingest.shard import ingest_shard

#: name -> DICOM transfer syntax, or None for the 8-bit JPEG raster files.
ENCODINGS: dict[str, str | None] = {
    "DICOM uncompressed": ExplicitVRLittleEndian,
    "DICOM JPEG 2000 Lossless": JPEG2000Lossless,
    "DICOM JPEG-LS Lossless": JPEGLSLossless,
    "JPEG 8-bit, quality 95": None,
}
MAX_VALUE = 4095  # 12-bit stored values
SALT = "benchmark-salt"


def synthetic_radiograph(rows: int, columns: int, rng: np.random.Generator) -> np.ndarray:
    """A chest-radiograph-like 12-bit image (uint16): smooth anatomy, fine texture, noise.

    Smooth content with noise makes the lossless codecs compress about as much as on real
    radiographs; constant or pure-noise images would make them look much faster or slower.
    """
    y = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, columns, dtype=np.float32)[None, :]
    dy, dx = rng.uniform(-0.05, 0.05, 2).astype(np.float32)

    def ellipse(cy: float, cx: float, ry: float, rx: float, edge: float = 0.08) -> np.ndarray:
        r = np.sqrt(((y - cy - dy) / ry) ** 2 + ((x - cx - dx) / rx) ** 2)
        return np.clip((1 - r) / edge, 0, 1)

    body = ellipse(0.15, 0.0, 1.05, 0.88)
    lungs = ellipse(-0.05, -0.4, 0.62, 0.3) + ellipse(-0.05, 0.4, 0.62, 0.3)
    spine = np.exp(-(((x - dx) / 0.08) ** 2))
    ribs = (0.5 + 0.5 * np.sin(2 * np.pi * 8 * (y + 0.4 * x**2))) ** 4
    vessels = np.sin(2 * np.pi * 90 * x + 3 * y) * np.sin(2 * np.pi * 75 * y - 2 * x)
    image = 250 + 200 * (y + 1) + 2000 * body + 800 * spine * body
    image = image - lungs * (1100 - 350 * ribs - 40 * vessels)
    image = image + rng.normal(0, 15, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, MAX_VALUE).astype(np.uint16)


def write_dicom(path: Path, pixels: np.ndarray, index: int, syntax: str) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    # The same UIDs for one image in every encoding: the file sets differ only in encoding.
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"bench-image-{index}"])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"bench-study-{index}"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"bench-series-{index}"])
    ds.PatientID = f"P{index:03d}"
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ViewPosition = "PA"
    ds.set_pixel_data(pixels, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.WindowCenter = (MAX_VALUE + 1) / 2
    ds.WindowWidth = MAX_VALUE + 1
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, pixels, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def write_file_set(root: Path, images: list[np.ndarray], syntax: str | None) -> list[str]:
    """The images in one encoding under ``root``, with the generic adapter's manifest."""
    (root / "images").mkdir(parents=True)
    paths, records = [], []
    for index, pixels in enumerate(images):
        if syntax is None:
            path = f"images/{index:03d}.jpg"
            scaled = np.rint(pixels.astype(np.float32) * (255 / MAX_VALUE)).astype(np.uint8)
            Image.fromarray(scaled, mode="L").save(root / path, quality=95)
        else:
            path = f"images/{index:03d}.dcm"
            write_dicom(root / path, pixels, index, syntax)
        paths.append(path)
        records.append({"path": path, "patient": f"P{index:03d}", "study": f"S{index:03d}",
                        "race": ("White", "Black", "Asian")[index % 3], "sex": "FM"[index % 2], "age": 40 + index})
    pd.DataFrame(records).to_csv(root / "manifest.csv", index=False)
    return paths


def setup_process() -> None:
    """What every timed process runs first (this one and each worker)."""
    torch.set_num_threads(1)


def plain_loop(root: str, paths: list[str], size: int) -> int:
    """Decode each file and resize it to the cache size: the same output resolution as readrace."""
    for path in paths:
        if path.endswith(".jpg"):
            with Image.open(Path(root) / path) as image:
                pixels = np.asarray(image)
        else:
            pixels = pydicom.dcmread(Path(root) / path).pixel_array
        resize_square(pixels.astype(np.float32)[None], size)
    return len(paths)


def run_shard(root: str, paths: list[str], size: int) -> int:
    adapter = make_adapter("generic", root, {"manifest": "manifest.csv"})
    result = ingest_shard(adapter, paths, "cxr", {"size": size}, SALT, progress=False)
    if len(result.quarantine):
        # A rejected file costs less than an ingested one: the rate would be wrong.
        raise RuntimeError(f"files quarantined: {sorted(set(result.quarantine['reason']))}")
    return len(result.rows)


def run_parallel(pool: ProcessPoolExecutor, root: str, shards: list[list[str]], size: int) -> int:
    return sum(pool.map(run_shard, [root] * len(shards), shards, [size] * len(shards)))


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB.

    Read from VmHWM, not ``ru_maxrss``: Linux carries ``ru_maxrss`` across exec, so a spawned
    child would report its parent's peak (this script's, holding all the images); VmHWM
    belongs to the address space, which exec replaces.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory needs Linux")


def shard_peak(root: str, paths: list[str], size: int) -> tuple[float, float]:
    """In a fresh process: the peak memory (MiB) of its imports alone, then with the shard."""
    floor = peak_rss_mib()
    run_shard(root, paths, size)
    return floor, peak_rss_mib()


def timed(function: Callable[..., Any], *args: Any) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--columns", type=int, default=2500)
    parser.add_argument("--size", type=int, default=320, help="cache size in pixels (the paper's CXR size)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="600 x 500, 2 files, 1 repeat: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.files, args.rows, args.columns, args.repeats = 2, 600, 500, 1
    setup_process()

    encodings = dict(ENCODINGS)
    skipped = []
    if not get_encoder(JPEGLSLossless).is_available:
        skipped.append("DICOM JPEG-LS Lossless: skipped, pydicom has no JPEG-LS encoder here "
                       "(pip install pyjpegls to enable it)")
        del encodings["DICOM JPEG-LS Lossless"]

    spawn = multiprocessing.get_context("spawn")  # no fork of a process that has run torch
    with tempfile.TemporaryDirectory() as tmp, \
            ProcessPoolExecutor(args.workers, mp_context=spawn, initializer=setup_process) as pool:
        # Start the workers now: their imports overlap the writing of the files (not timed).
        for _ in range(args.workers):
            pool.submit(int)
        rng = np.random.default_rng(0)
        images = [synthetic_radiograph(args.rows, args.columns, rng) for _ in range(args.files)]
        sets: dict[str, tuple[str, list[str]]] = {}
        megabytes: dict[str, float] = {}
        for number, (name, syntax) in enumerate(encodings.items()):
            root = Path(tmp) / f"set{number}"
            paths = write_file_set(root, images, syntax)
            sets[name] = (str(root), paths)
            megabytes[name] = sum((root / p).stat().st_size for p in paths) / len(paths) / 1e6
        del images

        for root, paths in sets.values():
            for path in paths:
                (Path(root) / path).read_bytes()  # into the page cache
            plain_loop(root, paths[:1], args.size)  # imports, decoder plugins, torch kernels
            run_shard(root, paths[:1], args.size)
            run_parallel(pool, root, [paths[:1]] * args.workers, args.size)

        variants = ("baseline", "readrace 1 process", f"readrace {args.workers} processes")
        seconds: dict[tuple[str, str], list[float]] = {(n, v): [] for n in sets for v in variants}
        # A shard's cost before its first file (the dataset's tables read and joined): a real
        # shard (thousands of files) amortises it, this benchmark's few files do not.
        fixed: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for name, (root, paths) in sets.items():
                shards = [paths[i :: args.workers] for i in range(args.workers)]
                seconds[name, variants[0]].append(timed(plain_loop, root, paths, args.size))
                seconds[name, variants[1]].append(timed(run_shard, root, paths, args.size))
                seconds[name, variants[2]].append(timed(run_parallel, pool, root, shards, args.size))
                fixed.setdefault(name, []).append(timed(run_shard, root, [], args.size))
        pool.shutdown()

        # A fresh process per encoding (an executor of one worker each), so that each peak is
        # one shard's alone; they run side by side, which does not change a process's own peak.
        with contextlib.ExitStack() as stack:
            futures = {}
            for name, (root, paths) in sets.items():
                executor = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn, initializer=setup_process))
                futures[name] = executor.submit(shard_peak, root, paths, args.size)
            floors, peaks = {}, {}
            for name, future in futures.items():
                floors[name], peaks[name] = future.result()

    rate = {key: args.files / statistics.median(values) for key, values in seconds.items()}
    print(f"{args.files} files of {args.rows} x {args.columns} px (12-bit in uint16), cache size {args.size} px, "
          f"median of {args.repeats} interleaved run(s), torch 1 thread per process, {os.cpu_count()} CPUs")
    print(f"one decoded frame as float32: {args.rows * args.columns * 4 / 1e6:.1f} MB")
    header = f"{'encoding':<26}{'MB/file':>8}{'baseline':>10}{variants[1]:>30}{variants[2]:>30}{'peak RSS':>10}"
    print(header)
    print(f"{'':<26}{'':>8}{'files/s':>10}{'files/s (vs baseline)':>30}{'files/s (vs baseline)':>30}{'MiB':>10}")
    for name in sets:
        base = rate[name, variants[0]]
        cells = [f"{rate[name, v]:.2f} ({rate[name, v] / base:.2f}x)" for v in variants[1:]]
        print(f"{name:<26}{megabytes[name]:>8.2f}{base:>10.2f}{cells[0]:>30}{cells[1]:>30}{peaks[name]:>10.0f}")
    for line in skipped:
        print(line)
    print(f"peak RSS: one shard over all {args.files} files in a fresh process; floor (the same processes "
          f"before decoding: imports only): {min(floors.values()):.0f}-{max(floors.values()):.0f} MiB")
    shard_cost = {name: statistics.median(values) for name, values in fixed.items()}
    print("readrace's fixed cost per shard (its tables read and joined, no file decoded), included above: "
          + ", ".join(f"{name} {cost * 1e3:.0f} ms" for name, cost in shard_cost.items()))
    print("per-core rate for projections (readrace, 1 process, less the fixed cost of the shard):")
    for name in sets:
        files_seconds = statistics.median(seconds[name, variants[1]]) - shard_cost[name]
        if files_seconds <= 0.1 * statistics.median(seconds[name, variants[1]]):
            print(f"  {name:<26}n/a: the fixed cost is most of this run (use more --files)")
            continue
        per_core = args.files / files_seconds
        print(f"  {name:<26}{per_core:>8.2f} files/s per core = {per_core * 3600:>8.0f} files/h; "
              f"100,000 files: {100_000 / per_core / 3600:.1f} core-hours")


if __name__ == "__main__":
    main()
