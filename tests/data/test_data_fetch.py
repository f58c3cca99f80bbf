from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import numpy as np
import pytest

from hfm.data import load_data
from hfm.env import hfm_cache_dir
from hfm.errors import HubError
from hfm.hub import data_fetch


def _payload() -> bytes:
    buffer = io.BytesIO()
    labels = np.array([[0], [1]] * 6, dtype=np.uint8)
    np.savez(buffer, train_images=np.zeros((12, 28, 28), np.uint8), train_labels=labels)
    return buffer.getvalue()


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Serve a fake 'breastmnist' from a file:// URL; the network is never touched."""
    payload = _payload()
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "breastmnist.npz").write_bytes(payload)
    monkeypatch.setattr(data_fetch, "_RECORD", (tmp_path / "mirror").as_uri())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HFM_OFFLINE", raising=False)
    return payload


def test_official_urls() -> None:
    assert data_fetch.medmnist_url("breastmnist", 28) == (
        "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1"
    )
    assert data_fetch.medmnist_url("bloodmnist", 224).endswith("/bloodmnist_224.npz?download=1")
    assert data_fetch.medmnist_classes("breastmnist") == ["malignant", "normal, benign"]


def test_download_verifies_checksum_and_caches(mirror: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    classes, sums = data_fetch.MEDMNIST["breastmnist"]
    monkeypatch.setitem(
        data_fetch.MEDMNIST, "breastmnist", (classes, {**sums, 28: hashlib.md5(mirror).hexdigest()})
    )
    monkeypatch.setattr(data_fetch, "medmnist_url", lambda name, size: f"{data_fetch._RECORD}/{name}.npz")
    splits = load_data({"type": "npz", "name": "breastmnist", "split": {"val": 0.2, "test": 0.2}})
    assert splits.classes == ["malignant", "normal, benign"]
    cached = hfm_cache_dir("datasets") / "medmnist" / "breastmnist.npz"
    assert cached.read_bytes() == mirror
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # cached copies work offline
    assert data_fetch.fetch_medmnist("breastmnist") == cached


def test_checksum_mismatch_is_refused(mirror: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_fetch, "medmnist_url", lambda name, size: f"{data_fetch._RECORD}/{name}.npz")
    with pytest.raises(HubError, match="failed its checksum"):
        data_fetch.fetch_medmnist("breastmnist")
    assert not list((hfm_cache_dir("datasets") / "medmnist").iterdir())  # no partial file left


def test_offline_fails_fast_with_what_to_do() -> None:
    start = time.monotonic()
    with pytest.raises(
        HubError, match="not cached and hfm is offline; download https://zenodo.org/records/10519652"
    ):
        load_data({"type": "npz", "name": "breastmnist"})
    assert time.monotonic() - start < 2
    with pytest.raises(HubError, match="unknown MedMNIST set 'chestmnist'"):
        data_fetch.fetch_medmnist("chestmnist")
    with pytest.raises(HubError, match="no 100px version"):
        data_fetch.fetch_medmnist("breastmnist", 100)
