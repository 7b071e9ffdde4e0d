"""Pseudonymous ids: a keyed hash of the dataset's own ids.

Results never hold a DICOM PatientID, StudyInstanceUID, SOPInstanceUID or a source path: each
is replaced by an HMAC-SHA256 of the id under the configured salt, truncated to 16 hex digits (64 bits: a
collision among a million ids has a probability of about 3e-8). The same id and salt give the
same pseudonym in every stage and every run, so joins across tables keep working.
"""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_HEX_DIGITS = 16


def pseudonymize(value: str, salt: str, kind: str) -> str:
    """The pseudonym of ``value``; ``kind`` ("patient", "study", ...) keeps the id spaces apart."""
    if value is None or str(value) == "":
        raise ValueError(f"cannot pseudonymize an empty {kind} id")
    message = f"{kind}\x1f{value}".encode()
    return hmac.new(salt.encode(), message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_DIGITS]


def file_id(path: str, salt: str) -> str:
    """The pseudonym of an input file, from its path relative to the dataset root.

    Source paths carry identifiers (MIMIC-CXR ``p{subject_id}/s{study_id}``, RSPECT's UIDs,
    hospital exports named by MRN), so everything under ``results/`` and ``logs/`` names a
    file by this id; ``private/{dataset}/files.csv`` maps it back to the path.
    """
    return pseudonymize(path, salt, "file")
