"""Logging for workflow jobs: everything a job prints goes to its Snakemake log file.

Jobs that read source files (listing, ingestion shards, gather) also have a private log:
their public log (under ``logs/``) may be shared, but library messages and exception
messages quote source paths and header values (an adapter's "file ... is missing", PIL's
"cannot identify image file '/...'"), which carry identifiers. With ``private_log``,
:func:`job_logging` keeps those out of the public log.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The package whose own log records are written to be public (they name files by file_id).
_OWN = "readrace"


class _OwnRecords(logging.Filter):
    """Only readrace's records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == _OWN or record.name.startswith(_OWN + ".")


class _WithoutTraceback(logging.Formatter):
    """A record's message without its traceback (exception messages may quote paths)."""

    def format(self, record: logging.LogRecord) -> str:
        bare = logging.makeLogRecord(record.__dict__)
        bare.exc_info, bare.exc_text, bare.stack_info = None, None, None
        return super().format(bare)


@contextlib.contextmanager
def job_logging(log_path: str | Path, private_log: str | Path | None = None) -> Iterator[logging.Logger]:
    """Send logging records, warnings and stderr (tqdm's progress bars) to ``log_path``.

    An exception escaping the job is written to the log with its traceback before it
    propagates, so the log alone explains a failed job.

    With ``private_log`` (``private/logs/{rule}/...``, never to be shared), the public log
    gets only readrace's own records, without tracebacks, and stderr; every record (those of
    libraries and warnings included, with tracebacks) goes to the private log. An exception
    that stops the job goes there with its message and traceback, and the public log gets
    its type and a pointer to the private log.
    """
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    if private_log is not None:
        Path(private_log).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(open(log_path, "w", buffering=1))
        handlers = []
        public = logging.StreamHandler(stream)
        handlers.append(public)
        if private_log is None:
            public.setFormatter(logging.Formatter(_FORMAT))
        else:
            public.setFormatter(_WithoutTraceback(_FORMAT))
            public.addFilter(_OwnRecords())
            private = logging.StreamHandler(stack.enter_context(open(private_log, "w", buffering=1)))
            private.setFormatter(logging.Formatter(_FORMAT))
            handlers.append(private)
        saved_stderr = sys.stderr
        sys.stderr = stream
        root = logging.getLogger()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        log = logging.getLogger(_OWN)
        try:
            yield log
        except BaseException as error:
            if private_log is None:
                log.exception("job failed")
            else:
                log.error(
                    "job failed: %s; its message and traceback are in the private log %s",
                    type(error).__name__, private_log, exc_info=True,
                )
            raise
        finally:
            for handler in handlers:
                root.removeHandler(handler)
            sys.stderr = saved_stderr
