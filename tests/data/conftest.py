"""Small generated image files for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, kind: str, seed: int = 0, size: int = 20) -> None:
    """Write one small image of a given mode/format ('png-rgb', 'png-grey', 'png-rgba', 'png-palette',
    'png-16', 'jpeg', 'tiff-16', 'bmp')."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    if kind == "png-rgb":
        Image.fromarray(rgb).save(path)
    elif kind == "png-grey":
        Image.fromarray(rgb[..., 0]).save(path)
    elif kind == "png-rgba":
        Image.fromarray(np.dstack([rgb, np.full((size, size), 200, np.uint8)])).save(path)
    elif kind == "png-palette":
        Image.fromarray(rgb).convert("P").save(path)
    elif kind in ("png-16", "tiff-16"):
        Image.fromarray(rng.integers(0, 4000, (size, size), dtype=np.uint16)).save(path)
    elif kind == "jpeg":
        Image.fromarray(rgb).save(path, format="JPEG")
    elif kind == "bmp":
        Image.fromarray(rgb).save(path, format="BMP")
    else:  # pragma: no cover - test helper misuse
        raise ValueError(kind)


KINDS = {
    "png-rgb": ".png",
    "png-grey": ".PNG",
    "png-rgba": ".png",
    "png-palette": ".png",
    "png-16": ".png",
    "jpeg": ".JPG",
    "tiff-16": ".tif",
    "bmp": ".bmp",
}


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Two classes (one with a space in its name), 8 images each, every format and mode, names with
    spaces and parentheses and upper-case extensions."""
    root = tmp_path / "images"
    for c, cls in enumerate(["benign lesion", "malignant"]):
        for i, (kind, ext) in enumerate(KINDS.items()):
            write_image(root / cls / f"{cls} ({i}){ext}", kind, seed=10 * c + i)
    return root


@pytest.fixture
def make_image() -> object:
    """The :func:`write_image` helper, for tests that build their own layouts."""
    return write_image
