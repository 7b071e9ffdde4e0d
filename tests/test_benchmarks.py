"""The benchmarks run: their quick modes end well and print what they should (never timings)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

ENCODINGS = ("DICOM uncompressed", "DICOM JPEG 2000 Lossless", "DICOM JPEG-LS Lossless", "JPEG 8-bit, quality 95")


def test_ingest_fullsize_quick_prints_a_line_per_encoding() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "ingest_fullsize.py"), "--quick"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    for name in ENCODINGS:
        # A table row (name, then the rates), or JPEG-LS's line saying it is skipped and why.
        rows = [line for line in lines if line.startswith(name) and ("x)" in line or "skipped" in line)]
        assert len(rows) == 1, f"{name}: {run.stdout}"
    assert "floor" in run.stdout and "per-core rate" in run.stdout
