"""Embedding extraction and its on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hfm
from hfm import embeddings
from hfm.data import ImageDataset
from hfm.data.splits import Subset
from hfm.embeddings import extract


def _subset(n: int = 10, seed: int = 0) -> Subset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, size=(n, 40, 40, 3), dtype=np.uint8)
    return Subset(ids=[f"img/{i}" for i in range(n)], labels=np.arange(n) % 2, reader=lambda i: images[i])


def _count_forwards(backbone) -> list[int]:
    calls: list[int] = []
    backbone.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.fixture
def backbone():
    return hfm.load_backbone("pathology/kaiko-vitb16", twin=True)


def test_extract_matches_direct_forward_in_order(backbone) -> None:
    subset = _subset(7)
    out = extract(backbone, subset, batch_size=3, progress=False, cache=False)
    images = torch.stack([backbone.transform(subset.image(i)) for i in range(len(subset))])
    with torch.no_grad():
        expected = backbone(images)
    assert out.shape == (7, backbone.spec.embed_dim) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_second_run_does_zero_forward_passes(backbone, tmp_path) -> None:
    subset = _subset(9)
    calls = _count_forwards(backbone)
    first = extract(backbone, subset, batch_size=4, progress=False, split="train")
    assert len(calls) == 3 and embeddings.STATS["cache_writes"] >= 1
    # a "restart": a freshly loaded backbone, same data read again
    again = hfm.load_backbone("pathology/kaiko-vitb16", twin=True)
    calls_again = _count_forwards(again)
    hits = embeddings.STATS["cache_hits"]
    second = extract(again, _subset(9), batch_size=4, progress=False, split="train")
    assert calls_again == [] and embeddings.STATS["cache_hits"] == hits + 1
    assert torch.equal(first, second)


def test_cache_invalidated_when_a_key_part_changes(backbone, tmp_path) -> None:
    subset = _subset(6)
    extract(backbone, subset, progress=False, cache_dir=tmp_path)
    calls = _count_forwards(backbone)
    extract(backbone, subset, progress=False, cache_dir=tmp_path, split="val")  # split
    extract(backbone, _subset(6, seed=0).take([1, 0, 2, 3, 4, 5]), progress=False, cache_dir=tmp_path)  # data
    backbone.is_twin = False
    extract(backbone, subset, progress=False, cache_dir=tmp_path)  # twin flag
    backbone.is_twin = True
    backbone.revision = "0" * 40
    extract(backbone, subset, progress=False, cache_dir=tmp_path)  # revision
    backbone.spec = backbone.spec.replace(pooling="mean")
    extract(backbone, subset, progress=False, cache_dir=tmp_path)  # pooling
    backbone.transform = backbone.transform.__class__(32, (0.5,) * 3, (0.5,) * 3)
    extract(backbone, subset, progress=False, cache_dir=tmp_path)  # preprocessing
    assert len(calls) == 6
    assert len(list(tmp_path.glob("*.safetensors"))) == 7
    extract(backbone, subset, progress=False, cache_dir=tmp_path)
    assert len(calls) == 6


def test_weights_change_without_revision_misses(tmp_path) -> None:
    backbone = hfm.load_backbone("pathology/kaiko-vitb16", twin=True)
    backbone.revision = None
    subset = _subset(4)
    first = extract(backbone, subset, progress=False, cache_dir=tmp_path)
    with torch.no_grad():
        next(backbone.parameters()).add_(1.0)
    second = extract(backbone, subset, progress=False, cache_dir=tmp_path)
    assert not torch.equal(first, second)


def test_image_dataset_and_augmentation(backbone, tmp_path) -> None:
    subset = _subset(5)
    plain = ImageDataset(subset, backbone.transform)
    out = extract(backbone, plain, progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1  # fingerprint read from .subset
    torch.testing.assert_close(out, extract(backbone, subset, progress=False, cache=False))
    augmented = ImageDataset(subset, backbone.transform, augment=lambda image: image.rotate(90))
    extract(backbone, augmented, progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1  # never cached


def test_default_cache_dir_follows_hfm_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HFM_CACHE", str(tmp_path / "c"))
    assert embeddings.cache_root() == tmp_path / "c" / "embeddings"
    monkeypatch.delenv("HFM_CACHE")
    assert embeddings.cache_root().parts[-2:] == ("hfm", "embeddings")


def test_corrupt_cache_file_is_a_miss(backbone, tmp_path) -> None:
    subset = _subset(4)
    first = extract(backbone, subset, progress=False, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(b"garbage")
    torch.testing.assert_close(extract(backbone, subset, progress=False, cache_dir=tmp_path), first)
