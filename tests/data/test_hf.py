from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hfm.data import load_data
from hfm.errors import DataError, HubError

datasets = pytest.importorskip("datasets")


def _dataset(n: int, seed: int) -> object:
    rng = np.random.default_rng(seed)
    features = datasets.Features(
        {
            "img": datasets.Image(),
            "finding": datasets.ClassLabel(names=["clear", "nodule"]),
            "patient": datasets.Value("string"),
        }
    )
    rows = {
        "img": [Image.fromarray(rng.integers(0, 255, (10, 10), dtype=np.uint8)) for _ in range(n)],
        "finding": [i % 2 for i in range(n)],
        "patient": [f"p{i // 2}" for i in range(n)],
    }
    return datasets.Dataset.from_dict(rows, features=features)


def test_save_to_disk_folder_with_classlabel(tmp_path: Path) -> None:
    dd = datasets.DatasetDict(
        {"train": _dataset(20, 0), "validation": _dataset(6, 1), "test": _dataset(8, 2)}
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    splits = load_data(
        {"type": "hf", "path": str(tmp_path / "ds"), "image_column": "img", "label_column": "finding"}
    )
    assert splits.classes == ["clear", "nodule"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 6, 8)
    assert splits.val.ids[0] == "validation/0"
    assert np.asarray(splits.train.image(3)).shape == (10, 10)
    assert splits.split_info == {"made_by": "source"}


def test_parquet_folder_with_groups_and_auto_split(tmp_path: Path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    _dataset(40, 3).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    splits = load_data(
        {
            "type": "hf",
            "path": str(folder),
            "image_column": "img",
            "label_column": "finding",
            "group_column": "patient",
        }
    )
    assert splits.split_info["made_by"] == "hfm" and splits.split_info["group_aware"]
    assert not set(splits.train.groups or []) & splits.heldout_groups()
    assert splits.train.image(0).size == (10, 10)


def test_string_labels_and_missing_column(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_dict(
        {"image": [np.zeros((4, 4), np.uint8).tolist()] * 6, "label": ["b", "a", "b", "a", "b", "a"]}
    )
    ds.save_to_disk(str(tmp_path / "plain"))
    splits = load_data({"type": "hf", "path": str(tmp_path / "plain"), "split": {"val": 0.2, "test": 0.2}})
    assert splits.classes == ["a", "b"]
    with pytest.raises(DataError, match="missing column 'finding'; columns are image, label"):
        load_data({"type": "hf", "path": str(tmp_path / "plain"), "label_column": "finding"})


def test_hub_id_offline_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(HubError, match="could not load Hub dataset 'someone/no-such-set'"):
        load_data({"type": "hf", "id": "someone/no-such-set"})
    assert time.monotonic() - start < 10
