"""DICOM pixel data to a display image: rescale, window, MONOCHROME1 inversion. Nothing else leaves.

The reader returns only a ``uint8`` grey array. Names, IDs, dates and every other header field stay
inside this module (ids are the files' relative paths, chosen by the user). Needs ``pydicom``
(``pip install hfm-hub[dicom]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hfm.errors import DataError


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise DataError("reading DICOM needs pydicom: pip install 'hfm-hub[dicom]'") from None
    return pydicom


def _first(value: Any) -> float | None:
    """Window centre/width may be multi-valued; the first is the default display."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    return None if value is None else float(value)


def to_display(pixels: np.ndarray, header: Any, *, window: str = "auto") -> np.ndarray:
    """Modality rescale, then the VOI window (when present and asked for), then MONOCHROME1 inversion.

    Args:
        pixels: Stored pixel values ``[H, W]`` (8 or 16 bit, signed or not) or ``[H, W, 3]`` for colour.
        header: The pydicom dataset (read here only for the display attributes).
        window: ``auto`` uses WindowCenter/WindowWidth when the file has them; ``none`` scales by min/max.

    Returns:
        ``uint8`` array ``[H, W]`` (or ``[H, W, 3]`` for colour files).
    """
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:
        if photometric not in ("RGB", "YBR_FULL", "YBR_FULL_422"):
            raise DataError(f"unsupported DICOM pixel layout {pixels.shape} ({photometric})")
        return _scale(pixels.astype(np.float64))
    values = pixels.astype(np.float64)
    slope = header.get("RescaleSlope", None)
    intercept = header.get("RescaleIntercept", None)
    values = values * (float(slope) if slope is not None else 1.0) + (
        float(intercept) if intercept is not None else 0.0
    )
    centre = _first(header.get("WindowCenter", None))
    width = _first(header.get("WindowWidth", None))
    if window == "auto" and centre is not None and width is not None and width > 0:
        # DICOM PS3.3 C.11.2.1.2.1 linear window: [c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2] -> [0, 1].
        low = centre - 0.5 - (width - 1.0) / 2.0
        span = max(width - 1.0, 1e-6)
        unit = np.clip((values - low) / span, 0.0, 1.0)
        image = np.round(unit * 255.0).astype(np.uint8)
    else:
        image = _scale(values)
    if photometric == "MONOCHROME1":
        image = 255 - image
    return image


def _scale(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


class DicomOpener:
    """Opens one DICOM file and returns its display image; rejects multi-frame files (a picklable class)."""

    def __init__(self, window: str = "auto") -> None:
        self.window = window

    def __call__(self, path: Path) -> np.ndarray:
        pydicom = _pydicom()
        header = pydicom.dcmread(path)
        frames = int(header.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise DataError(f"multi-frame DICOM ({frames} frames) is not supported; export single frames")
        if "PixelData" not in header:
            raise DataError("DICOM file has no pixel data")
        return to_display(header.pixel_array, header, window=self.window)
