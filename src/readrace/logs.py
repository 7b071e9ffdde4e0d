"""Logging for workflow jobs: everything a job prints goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def job_logging(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send logging records, warnings and stderr (tqdm's progress bars) to ``log_path``.

    An exception escaping the job is written to the log with its traceback before it
    propagates, so the log alone explains a failed job.
    """
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as stream:
        saved_stderr = sys.stderr
        sys.stderr = stream
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            yield logging.getLogger("readrace")
        except BaseException:
            logging.getLogger("readrace").exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr = saved_stderr
