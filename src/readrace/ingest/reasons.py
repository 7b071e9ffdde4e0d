"""Quarantine reasons in two parts: a public phrase and a private detail.

Everything under ``results/`` and ``logs/`` may be shared with people who must not learn who
the patients are; source paths and header values can say exactly that (MIMIC-CXR
``p{subject_id}/s{study_id}``, RSPECT ``{StudyInstanceUID}/...``, hospital exports named by
MRN or accession number). Library error messages quote both: pydicom and the OS name the file,
PIL says "cannot identify image file '/path/...'", a garbled header value ends up in a
message. So every reason is split in two:

``reason`` (public: ``results/{dataset}/quarantine.csv``, the summary, logs)
    Our own fixed text, plus only values known to be safe: integers, the names of registered
    UIDs (:func:`uid_name`), and values from a fixed vocabulary (:func:`known_term`: DICOM
    modality codes, photometric interpretations, view positions, PIL image modes). Whatever
    the file says, it can spell neither a name nor an id.
``detail`` (private: ``private/{dataset}/quarantine.csv``)
    The library's message, the unknown value, the traceback: what someone with access to the
    data needs to look into the file.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable

from pydicom.uid import UID

#: Longest public reason kept; quarantine lists are read by people, one line per file.
MAX_REASON_LENGTH = 160
#: Longest private detail kept (a traceback's last lines fit).
MAX_DETAIL_LENGTH = 2000

#: DICOM Modality (0008,0060) defined terms, current and retired (PS3.3 C.7.3.1.1.1).
DICOM_MODALITIES: frozenset[str] = frozenset(
    """ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DMS DG DOC DX ECG EEG EMG EOG EPS ES FID
    GM HC HD IO IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV
    OSS OT PA PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD
    RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC
    AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF""".split()
)
#: Photometric Interpretation (0028,0004) defined terms, current and retired (PS3.3 C.7.6.3.1.2).
PHOTOMETRIC_INTERPRETATIONS: frozenset[str] = frozenset(
    {
        "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
        "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB",
    }
)  # fmt: skip
#: Words of view values (DICOM ViewPosition and mammography view codes, and what MIMIC-CXR and
#: CheXpert write: "AP AXIAL", "XTABLE LATERAL", "Lateral"), compared case-insensitively.
VIEW_WORDS: frozenset[str] = frozenset(
    """AP PA LL RL RLD LLD RLO LLO LAO RAO LPO RPO LAT LATERAL LEFT RIGHT AXIAL XTABLE SWIMMERS
    OBLIQUE FRONTAL DECUBITUS CC MLO ML LM LMO XCCL XCCM FB SIO AT CV RCC LCC RMLO LMLO""".split()
)
#: PIL image modes (Pillow's Image.MODES and the raw I;16 variants).
PIL_MODES: frozenset[str] = frozenset(
    "1 L LA La P PA RGB RGBA RGBa RGBX CMYK YCbCr LAB HSV I F I;16 I;16B I;16L I;16N".split()
)


def one_line(text: object, limit: int) -> str:
    """``text`` as one printable line of at most ``limit`` characters (it lands in a CSV cell;
    damaged attribute values can carry control characters)."""
    line = "".join(c if c.isprintable() else "?" for c in " ".join(str(text).split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def uid_name(uid: str) -> str | None:
    """The registered name of a UID (a SOP class, a transfer syntax), or None for an
    unregistered or private one, whose digits could be anything."""
    if not uid:
        return None
    registered = UID(uid)
    return registered.name if registered.keyword else None


def known_term(value: object, vocabulary: Iterable[str]) -> str | None:
    """``value`` when it is one of ``vocabulary`` (exactly), else None."""
    return value if isinstance(value, str) and value in vocabulary else None


def known_view(value: object) -> str | None:
    """A view value made only of :data:`VIEW_WORDS` ("AP", "XTABLE LATERAL", "Lateral"), as
    written, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    words = value.upper().split()
    return value.strip() if len(words) <= 3 and all(word in VIEW_WORDS for word in words) else None


def describe(exc: BaseException) -> str:
    """A library exception as one line for a private detail: its type and message."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return one_line(text, MAX_DETAIL_LENGTH)


def traceback_detail(exc: BaseException) -> str:
    """The traceback of ``exc`` as one line for a private detail, its end kept when too long
    (the innermost frames and the message say most)."""
    lines = [line.strip() for chunk in traceback.format_exception(exc) for line in chunk.splitlines()]
    text = " | ".join(line for line in lines if line)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= MAX_DETAIL_LENGTH else "..." + text[-(MAX_DETAIL_LENGTH - 3):]
