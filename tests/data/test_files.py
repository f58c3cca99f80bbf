from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hfm.backbones.transforms import to_uint8_rgb
from hfm.data import episode, load_data
from hfm.errors import DataError


def test_folder_reads_every_format_and_mode(image_folder: Path) -> None:
    splits = load_data({"type": "folder", "root": str(image_folder), "split": {"val": 0.25, "test": 0.25}})
    assert splits.classes == ["benign lesion", "malignant"]
    every = splits.train.ids + splits.val.ids + splits.test.ids
    assert len(every) == 16 and len(set(every)) == 16
    assert "benign lesion/benign lesion (0).png" in every
    assert all(not Path(i).is_absolute() and str(image_folder) not in i for i in every)
    for subset in (splits.train, splits.val, splits.test):
        assert sorted(np.bincount(subset.labels, minlength=2).tolist()) == [np.bincount(subset.labels)[0]] * 2
        for i in range(len(subset)):
            assert to_uint8_rgb(subset.image(i)).shape == (20, 20, 3)
    assert splits.split_info["made_by"] == "hfm" and splits.split_info["from"] == "all"


def test_folder_with_split_folders(tmp_path: Path, make_image: Callable[..., None]) -> None:
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                make_image(tmp_path / split / cls / f"{i}.png", "png-rgb", seed=i)
    splits = load_data({"type": "folder", "root": str(tmp_path)})
    assert len(splits.test) == 4 and splits.test.ids[0] == "test/a/0.png"
    assert len(splits.train) + len(splits.val) == 6 and len(splits.val) == 2
    assert splits.split_info["made"] == ["val"]


def test_corrupt_and_truncated_images_raise_or_skip(image_folder: Path) -> None:
    (image_folder / "malignant" / "broken (1).png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = (image_folder / "malignant" / "malignant (0).png").read_bytes()
    (image_folder / "malignant" / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"malignant/(broken \(1\)|cut)\.png: corrupt or unreadable") as info:
        load_data({"type": "folder", "root": str(image_folder)})
    assert "on_error: skip" in str(info.value)
    splits = load_data({"type": "folder", "root": str(image_folder), "on_error": "skip"})
    assert splits.split_info["skipped_files"] == 2
    assert sorted(splits.split_info["skipped"]) == ["malignant/broken (1).png", "malignant/cut.png"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 16


def test_folder_errors(tmp_path: Path, image_folder: Path) -> None:
    with pytest.raises(DataError, match="folder not found"):
        load_data({"type": "folder", "root": str(tmp_path / "nope")})
    (image_folder / "empty").mkdir()
    with pytest.raises(DataError, match="class folder 'empty' has no images"):
        load_data({"type": "folder", "root": str(image_folder)})
    with pytest.raises(DataError, match="folder 'empty' is not one of the listed classes"):
        load_data({"type": "folder", "root": str(image_folder), "classes": ["benign lesion", "malignant"]})


def _manifest(tmp_path: Path, rows: list[dict[str, str]], name: str = "labels.csv") -> Path:
    path = tmp_path / name
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _csv_rows(tmp_path: Path, n: int = 24) -> list[dict[str, str]]:
    from PIL import Image

    rows = []
    for i in range(n):
        rel = f"img/p{i // 2} ({i}).png"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 12), 10 * i, dtype=np.uint8)).save(tmp_path / rel)
        rows.append({"file": rel, "diagnosis": ["normal", "tumour"][i % 2], "patient": f"p{i // 4}"})
    return rows


def test_csv_with_groups_is_group_disjoint(tmp_path: Path) -> None:
    path = _manifest(tmp_path, _csv_rows(tmp_path))
    source = {"type": "csv", "path": str(path), "path_column": "file", "label_column": "diagnosis"}
    splits = load_data({**source, "group_column": "patient"})
    assert splits.classes == ["normal", "tumour"]
    assert splits.split_info["group_aware"]
    assert not set(splits.train.groups or []) & splits.heldout_groups()
    assert splits.train.ids[0].startswith("img/p")
    shots = episode(splits, 2, seed=0, group_key="patient")
    assert np.bincount(shots.labels).tolist() == [2, 2]


def test_csv_split_column_and_numeric_labels(tmp_path: Path) -> None:
    rows = _csv_rows(tmp_path, 12)
    for i, row in enumerate(rows):
        row["diagnosis"] = str(i % 3 * 5)  # 0, 5, 10: sorted numerically
        row["fold"] = ["train", "train", "Validation", "test"][i % 4]
    path = _manifest(tmp_path, rows)
    splits = load_data(
        {
            "type": "csv",
            "path": str(path),
            "path_column": "file",
            "label_column": "diagnosis",
            "split_column": "fold",
        }
    )
    assert splits.classes == ["0", "5", "10"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 3, 3)
    assert splits.split_info == {"made_by": "source"}


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ({}, {"label_column": "label"}, "missing column 'label' \\(label_column\\); columns are file"),
        ({"file": "img/none.png"}, {}, "line 5: file 'img/none.png' \\(file\\) not found"),
        ({"diagnosis": "benign"}, {"classes": ["normal", "tumour"]}, "line 5: unknown label 'benign'"),
        ({"split": "holdout"}, {"split_column": "split"}, "line 5: split 'holdout'"),
    ],
)
def test_csv_errors_name_file_line_and_column(
    tmp_path: Path, change: dict[str, str], extra: dict[str, object], message: str
) -> None:
    rows = _csv_rows(tmp_path, 8)
    for row in rows:
        row["split"] = "train"
    rows[3].update(change)
    path = _manifest(tmp_path, rows)
    source = {"type": "csv", "path": str(path), "path_column": "file", "label_column": "diagnosis", **extra}
    with pytest.raises(DataError, match=message) as info:
        load_data(source)
    assert "labels.csv" in str(info.value)


def test_real_busi_folder(shared_data: Path) -> None:
    splits = load_data({"type": "folder", "root": str(shared_data / "busi")})
    assert splits.classes == ["benign", "malignant", "normal"]
    ids = splits.train.ids + splits.val.ids + splits.test.ids
    assert len(ids) == 780 and "benign/benign (1).png" in ids
    total = np.bincount(np.concatenate([s.labels for s in (splits.train, splits.val, splits.test)]))
    assert total.tolist() == [437, 210, 133]
    test_share = np.bincount(splits.test.labels) / total
    assert np.all(np.abs(test_share - 0.2) < 0.02)  # stratified
    shots = episode(splits, 16, seed=0)
    assert np.bincount(shots.labels).tolist() == [16, 16, 16]
