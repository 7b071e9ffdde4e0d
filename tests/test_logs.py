"""readrace.logs.job_logging: a job's public log never quotes what its private log holds."""

from __future__ import annotations

import logging
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from readrace.data.pseudonym import file_id
from readrace.ingest import shard as shard_module
from readrace.ingest.adapters import DatasetError, make_adapter
from readrace.ingest.shard import UNEXPECTED_ERROR, ingest_shard
from readrace.logs import job_logging

SECRET = "MRN84412907"


def test_library_records_and_warnings_go_to_the_private_log_only(tmp_path):
    public, private = tmp_path / "logs/job.log", tmp_path / "private/logs/job.log"
    with job_logging(public, private_log=private) as log:
        log.info("3 files of shard 0")
        logging.getLogger("pydicom").error("cannot decode /data/%s/a.dcm", SECRET)
        warnings.warn(f"odd value in /data/{SECRET}/b.dcm", UserWarning, stacklevel=1)
        sys.stderr.write("progress 3/3\n")
    public_text, private_text = public.read_text(), private.read_text()
    assert "3 files of shard 0" in public_text and "progress 3/3" in public_text
    assert SECRET not in public_text
    assert private_text.count(SECRET) == 2 and "3 files of shard 0" in private_text


def test_an_exception_that_stops_the_job_is_named_publicly_and_told_privately(tmp_path):
    public, private = tmp_path / "logs/job.log", tmp_path / "private/logs/job.log"
    with pytest.raises(DatasetError), job_logging(public, private_log=private):
        raise DatasetError(f"1 file(s) listed in manifest.csv are missing, e.g. {SECRET}/a.dcm")
    public_text, private_text = public.read_text(), private.read_text()
    assert SECRET not in public_text and "Traceback" not in public_text
    assert f"job failed: DatasetError; its message and traceback are in the private log {private}" in public_text
    assert f"DatasetError: 1 file(s) listed in manifest.csv are missing, e.g. {SECRET}/a.dcm" in private_text
    assert "Traceback (most recent call last)" in private_text


def test_without_a_private_log_the_traceback_stays_in_the_log(tmp_path):
    public = tmp_path / "logs/job.log"
    with pytest.raises(ValueError), job_logging(public):
        raise ValueError("boom")
    assert "Traceback" in public.read_text() and "ValueError: boom" in public.read_text()


def test_an_unexpected_error_on_one_file_is_logged_by_file_id(tmp_path, monkeypatch):
    root = tmp_path / "export"
    paths = [f"{SECRET}/ACC1/{i}.png" for i in range(2)]
    for i, path in enumerate(paths):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.arange(64).reshape(8, 8) * 3 + i).astype(np.uint8)).save(root / path)
    pd.DataFrame(
        {"path": paths, "patient": SECRET, "study": "ACC1", "race": "White", "sex": "F", "age": 50}
    ).to_csv(root / "manifest.csv", index=False)
    adapter = make_adapter("generic", root, {"manifest": "manifest.csv"})
    real = shard_module.read_image

    def fragile(path, min_size=None):
        if path.name == "1.png":
            raise RuntimeError(f"decoder crashed on {path}")
        return real(path, min_size)

    monkeypatch.setattr(shard_module, "read_image", fragile)
    public, private = tmp_path / "logs/shard.log", tmp_path / "private/logs/shard.log"
    with job_logging(public, private_log=private):
        result = ingest_shard(adapter, paths, "cxr", {"size": 8}, "salt-for-tests", progress=False)
    broken = file_id(paths[1], "salt-for-tests")
    assert result.quarantine[["file_id", "reason"]].values.tolist() == [[broken, UNEXPECTED_ERROR]]
    detail = result.quarantine["detail"].iloc[0]
    assert "Traceback" in detail and f"RuntimeError: decoder crashed on {root / paths[1]}" in detail
    public_text = public.read_text()
    assert f"unexpected error on file {broken} (RuntimeError)" in public_text and SECRET not in public_text
    assert len(result.rows) == 1  # the other file went on
