from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hfm.data import episode, load_data
from hfm.errors import DataError


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _images(n: int, channels: int | None = None) -> np.ndarray:
    shape = (n, 8, 8) if channels is None else (n, 8, 8, channels)
    return np.random.default_rng(n).integers(0, 255, shape, dtype=np.uint8)


def test_medmnist_layout_with_column_labels(tmp_path: Path) -> None:
    labels = np.array([[0], [1]] * 10, dtype=np.uint8)
    path = _npz(
        tmp_path / "set.npz",
        train_images=_images(20),
        train_labels=labels,
        val_images=_images(6),
        val_labels=labels[:6],
        test_images=_images(8),
        test_labels=labels[:8],
    )
    splits = load_data({"type": "npz", "path": str(path), "classes": ["a", "b"]})
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 6, 8)
    assert splits.train.labels.dtype == np.int64 and splits.train.labels.shape == (20,)
    assert splits.train.ids[:2] == ["train/0", "train/1"]
    assert splits.classes == ["a", "b"]
    assert splits.split_info == {"made_by": "source"}
    np.testing.assert_array_equal(splits.train.image(3), np.load(path)["train_images"][3])
    assert splits.source["path"] == str(path)


def test_classes_array_groups_and_auto_split(tmp_path: Path) -> None:
    n = 60
    labels = np.arange(n) % 3
    groups = np.array([f"slide{i // 4}" for i in range(n)])
    path = _npz(
        tmp_path / "cells.npz",
        train_images=_images(n, 3),
        train_labels=labels,
        train_slide=groups,
        classes=np.array(["RBC", "WBC", "Platelets"]),
    )
    splits = load_data({"type": "npz", "path": str(path), "group_key": "slide", "split": {"seed": 4}})
    assert splits.classes == ["RBC", "WBC", "Platelets"]
    info = splits.split_info
    assert info["made_by"] == "hfm" and info["group_aware"] and info["seed"] == 4
    train, held = set(splits.train.groups or []), set(splits.val.groups or []) | set(splits.test.groups or [])
    assert train and held and not train & held
    assert len(splits.train) + len(splits.val) + len(splits.test) == n
    again = load_data({"type": "npz", "path": str(path), "group_key": "slide", "split": {"seed": 4}})
    assert again.fingerprint == splits.fingerprint
    other = load_data({"type": "npz", "path": str(path), "group_key": "slide", "split": {"seed": 5}})
    assert other.fingerprint != splits.fingerprint


@pytest.mark.parametrize(
    ("arrays", "classes", "message"),
    [
        (
            {"train_images": _images(4), "train_labels": np.zeros(5, int)},
            2,
            "4 images but train_labels has 5",
        ),
        ({"train_images": _images(4)}, 2, "no matching 'train_labels'"),
        ({"val_images": _images(4), "val_labels": np.zeros(4, int)}, 2, "no 'train_images'"),
        ({"train_images": _images(4), "train_labels": np.zeros((4, 3), int)}, 2, "multi-label"),
        (
            {"train_images": _images(4), "train_labels": np.array([0, 1, 2, 1])},
            2,
            "label 2 is not a class index",
        ),
        (
            {"train_images": _images(4), "train_labels": np.array([0, 0, 2, 2])},
            3,
            "class 'b' has no training",
        ),
    ],
)
def test_bad_files_name_file_and_field(
    tmp_path: Path, arrays: dict[str, np.ndarray], classes: int, message: str
) -> None:
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_data({"type": "npz", "path": str(path), "classes": ["a", "b", "c"][:classes]})
    assert "bad.npz" in str(info.value)


def test_missing_group_array_and_missing_file(tmp_path: Path) -> None:
    path = _npz(tmp_path / "g.npz", train_images=_images(4), train_labels=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="no array 'train_patient'"):
        load_data({"type": "npz", "path": str(path), "group_key": "patient"})
    with pytest.raises(DataError, match="missing.npz: file not found"):
        load_data({"type": "npz", "path": str(tmp_path / "missing.npz")})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_data({"type": "npz", "path": str(tmp_path / "junk.npz")})


def test_real_breastmnist(shared_data: Path) -> None:
    splits = load_data({"type": "npz", "path": str(shared_data / "medmnist" / "breastmnist.npz")})
    assert (len(splits.train), len(splits.val), len(splits.test)) == (546, 78, 156)
    assert np.bincount(splits.train.labels).tolist() == [147, 399]
    assert np.bincount(splits.test.labels).tolist() == [42, 114]
    assert np.asarray(splits.train.image(0)).shape == (28, 28)
    shots = episode(splits, 8, seed=0)
    assert np.bincount(shots.labels).tolist() == [8, 8]


def test_real_bccd_groups_never_leak(shared_data: Path) -> None:
    path = shared_data / "bccd" / "bccd_cell_crops_64.npz"
    splits = load_data({"type": "npz", "path": str(path), "group_key": "source_image"})
    assert splits.classes == ["RBC", "WBC", "Platelets"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2804, 1137, 945)
    assert np.asarray(splits.train.image(0)).shape == (64, 64, 3)
    held = splits.heldout_groups()
    for seed in range(3):
        shots = episode(splits, 5, seed, group_key="source_image")
        assert np.bincount(shots.labels, minlength=3).tolist() == [5, 5, 5]
        used = {splits.train.groups[i] for i in shots.indices}  # type: ignore[index]
        assert not used & held
