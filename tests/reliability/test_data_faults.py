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


# -- item 14 --------------------------------------------------------------------------------------------------
def _csv(tmp_path: Path, rows: list[str], header: str = "path,label,patient") -> Path:
    from .conftest import write_folder

    write_folder(tmp_path / "imgs", n_per_class=4, classes=("a", "b"))
    path = tmp_path / "m.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _rows(groups: bool = True) -> list[str]:
    return [f"imgs/{c}/img{i}.png,{c},{'p' + str(i) if groups else ''}" for c in ("a", "b") for i in range(4)]


def test_empty_group_cell_is_an_error(tmp_path: Path) -> None:
    """Fault: a manifest whose group column is empty on some rows (they became one pseudo-patient '')."""
    rows = _rows()
    rows[3] = rows[3].rsplit(",", 1)[0] + ","
    path = _csv(tmp_path, rows)
    with pytest.raises(DataError, match="line 5: empty 'patient'"):
        load_data({"type": "csv", "path": str(path), "group_column": "patient"})


def test_same_file_with_conflicting_labels_is_an_error(tmp_path: Path) -> None:
    """Fault: one file listed twice, once as class a and once as class b."""
    rows = [*_rows(), "imgs/a/img0.png,b,p0"]
    with pytest.raises(
        DataError, match=r"'imgs/a/img0.png' is listed again with label 'b' \(line 2 says 'a'\)"
    ):
        load_data({"type": "csv", "path": str(_csv(tmp_path, rows))})


def test_identical_images_across_train_and_test_are_reported(tmp_path: Path, capsys) -> None:
    """Fault: an npz whose test split holds two byte-identical copies of train images."""
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 255, (6, 8, 8), dtype=np.uint8) for s in ("train", "val", "test")}
    images["test"][0] = images["train"][3]
    images["test"][4] = images["train"][1]
    labels = {s: np.arange(6) % 2 for s in images}
    splits = load_data({"type": "npz", "path": str(write_npz(tmp_path / "d.npz", images, labels))})
    assert splits.split_info["duplicates_train_test"] == 2
    assert "2 of 6 test image(s) are byte-identical to train images" in capsys.readouterr().err


# -- item 15 --------------------------------------------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """Fault: a JPEG stored sideways with EXIF orientation 6 (rotate 90° clockwise to view)."""
    from PIL import Image

    from hfm.data.images import open_image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / "phone.jpg", exif=exif)
    assert open_image(tmp_path / "phone.jpg").size == (20, 40)


# -- item 13 (data side) --------------------------------------------------------------------------------------
def test_two_channel_npz_is_an_error_at_load(tmp_path: Path) -> None:
    """Fault: an npz of 2-channel images (it failed only mid-sweep)."""
    images = {s: np.zeros((4, 8, 8, 2), dtype=np.uint8) for s in ("train", "val", "test")}
    labels = {s: np.arange(4) % 2 for s in images}
    with pytest.raises(DataError, match="has 2 channels"):
        load_data({"type": "npz", "path": str(write_npz(tmp_path / "d.npz", images, labels))})
