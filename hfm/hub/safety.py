"""Check a staged upload so nothing leaves the machine that should not.

Text files are scanned: absolute local paths are redacted (``[local path]/name``), DICOM header fields and the
Hub token stop the push. Only known binary files (safetensors weights, the PNG plot) may be uploaded; raw images
and DICOM files are refused. Works on the staging copy only; the user's folder is never changed.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hfm.errors import HubError

TEXT_SUFFIXES = (".json", ".md", ".yaml", ".yml", ".csv", ".txt")
ALLOWED_BINARY = (".safetensors", ".png")
IMAGE_SUFFIXES = (
    ".dcm",
    ".dicom",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".gif",
    ".nii",
    ".gz",
    ".npz",
    ".npy",
)
REDACTED = "[local path]"

# An absolute POSIX path (not a URL part: the slash may not follow a word char, ':', '/', '.', '~' or '-'),
# a home-relative path, or a Windows drive path (also JSON-escaped).
_POSIX = re.compile(r"(?<![\w:/.~\-\]])/(?:[^\s/\"'<>|,;:()\[\]`]+/)+[^\s/\"'<>|,;:()\[\]`]*")
_HOME = re.compile(r"(?<![\w/])~/(?:[^\s/\"'<>|,;:()`]+/)*[^\s/\"'<>|,;:()`]*")
_WINDOWS = re.compile(r"\b[A-Za-z]:(?:\\\\|\\|/)[^\s\"'<>|,;()`]*")
# DICOM patient/study identifiers written as "Keyword": value or (gggg,eeee) tags.
_DICOM_KEYWORDS = (
    "PatientName|PatientID|PatientBirthDate|PatientSex|PatientAge|PatientAddress|OtherPatientIDs|"
    "AccessionNumber|InstitutionName|InstitutionAddress|ReferringPhysicianName|PerformingPhysicianName|"
    "OperatorsName|StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID|StudyDate|StudyTime|StudyID|"
    "DeviceSerialNumber|StationName"
)
_DICOM_FIELD = re.compile(rf"[\"']?\b({_DICOM_KEYWORDS})\b[\"']?\s*[:=]\s*[\"']?[^\s\"',}}]+")
_DICOM_TAG = re.compile(r"\(00(08|10|20|32),[0-9A-Fa-f]{4}\)")


@dataclass
class ScanReport:
    """What the scan changed: ``redactions`` maps a staged file to how many paths were redacted in it."""

    redactions: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.redactions.values())


def _last_name(path: str) -> str:
    name = re.split(r"[\\/]+", path.rstrip("\\/"))[-1]
    return f"{REDACTED}/{name}" if name else REDACTED


def redact_paths(text: str) -> tuple[str, int]:
    """``text`` with absolute local paths replaced by ``[local path]/<last part>``, and how many there were."""
    count = 0

    def sub(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return _last_name(match.group(0))

    for pattern in (_WINDOWS, _HOME, _POSIX):
        text = pattern.sub(sub, text)
    return text, count


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _safetensors_header(path: Path) -> str:
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise HubError(f"{path.name} is not a safetensors file; re-save the adapter")
        (size,) = struct.unpack("<Q", raw)
        header = fh.read(size).decode("utf-8", errors="replace")
    json.loads(header)  # a broken header is caught here rather than on the Hub
    return header


def scan_stage(stage: Path, *, token: str | None, plot_names: tuple[str, ...] = ()) -> ScanReport:
    """Scan and redact every file under ``stage`` in place; refuse what must not be uploaded.

    Args:
        stage: The staging folder (a copy of what will be uploaded).
        token: The Hub token; a file containing it stops the push (the token itself is never shown).
        plot_names: PNG files that may be uploaded (the label-efficiency plot); other images are refused.

    Raises:
        HubError: For raw images, DICOM files or fields, unknown binary files, or the token in a file.
    """
    report = ScanReport()
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        rel = path.relative_to(stage).as_posix()
        if _is_dicom(path) or path.suffix.lower() in IMAGE_SUFFIXES and rel not in plot_names:
            raise HubError(f"refusing to push {rel}: raw images and DICOM files never leave the machine")
        if path.suffix.lower() == ".png" and rel not in plot_names:
            raise HubError(
                f"refusing to push {rel}: only the label-efficiency plot may be uploaded as an image"
            )
        if path.suffix.lower() in TEXT_SUFFIXES:
            text = path.read_text(encoding="utf-8", errors="replace")
        elif path.suffix.lower() == ".safetensors":
            text = _safetensors_header(path)
        elif path.suffix.lower() in ALLOWED_BINARY:
            text = ""
        else:
            raise HubError(
                f"refusing to push {rel}: unknown file type (only json, yaml, csv, md, safetensors)"
            )
        if token and token in text:
            raise HubError(f"refusing to push: {rel} contains your Hub token; delete it from the file first")
        if _DICOM_FIELD.search(text) or _DICOM_TAG.search(text):
            raise HubError(f"refusing to push {rel}: it contains DICOM header fields (patient or study data)")
        if path.suffix.lower() in TEXT_SUFFIXES:
            new, count = redact_paths(text)
            if count:
                path.write_text(new, encoding="utf-8")
                report.redactions[rel] = count
        elif path.suffix.lower() == ".safetensors" and redact_paths(text)[1]:
            raise HubError(f"refusing to push {rel}: its metadata holds local paths; re-save the adapter")
    return report
