"""Items 5, 14 and 15: data problems are errors (or counted skips) naming the image, never silent.

Faults injected:
- item 5: an npz of float images, one all NaN, one partly NaN, one with an infinite pixel;
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hfm.backbones.transforms import to_uint8_rgb
from hfm.data import load_data
from hfm.errors import DataError

from .conftest import write_npz


def _float_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    images = {s: rng.random((6, 12, 12), dtype=np.float32) for s in ("train", "val", "test")}
    images["train"][2] = np.nan
    images["train"][4, 3, 3] = np.nan
    images["test"][1, 0, 0] = np.inf
    labels = {s: np.arange(6) % 2 for s in images}
    return write_npz(tmp_path / "float.npz", images, labels)


def test_non_finite_pixels_are_an_error_naming_the_image(tmp_path: Path) -> None:
    """Fault: NaN (whole image and single pixels) and infinite pixels in a float npz."""
    with pytest.raises(DataError, match=r"train/2 has NaN or infinite pixels \(2 of 6 train"):
        load_data({"type": "npz", "path": str(_float_npz(tmp_path))})


def test_non_finite_images_are_counted_skips_under_on_error_skip(tmp_path: Path) -> None:
    """Fault: the same file with ``on_error: skip``: the three bad images are left out and counted."""
    splits = load_data({"type": "npz", "path": str(_float_npz(tmp_path)), "on_error": "skip"})
    assert splits.split_info["skipped_files"] == 3
    assert "train/2" not in splits.train.ids and "train/4" not in splits.train.ids
    assert len(splits.train) + len(splits.val) == 10 and len(splits.test) == 5
    for subset in (splits.train, splits.val, splits.test):
        for i in range(len(subset)):
            assert np.isfinite(np.asarray(subset.image(i), dtype=np.float64)).all()


def test_a_nan_image_never_becomes_black_silently() -> None:
    """Fault: a NaN image reaching the conversion to uint8 from any other source."""
    image = np.full((8, 8), np.nan, dtype=np.float32)
    with pytest.raises(DataError, match="NaN"):
        to_uint8_rgb(image)
