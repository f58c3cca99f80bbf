"""Item 1, stale embeddings: the embedding cache must miss whenever the pixels the backbone sees can change.

Faults injected:
- the files of a class-folder data set are overwritten with other pixels under the same names and labels;
- the image arrays of an ``.npz`` change while ids and labels stay;
- the same layout (same relative names and labels) is read from another root with other pixels;
- the backbone's weights are trained in place although its pinned commit is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

import hfm
from hfm.data import load_data
from hfm.embeddings import STATS, extract

from .conftest import write_folder, write_npz


def _embed_train(data: dict, cache: Path) -> torch.Tensor:
    backbone = hfm.load_backbone("pathology/kaiko-vitb16", twin=True)
    return extract(backbone, load_data(data).train, progress=False, cache_dir=cache)


def _blacken(root: Path) -> None:
    for png in root.rglob("*.png"):
        Image.fromarray(np.zeros((24, 24, 3), dtype=np.uint8)).save(png)


def test_overwritten_files_miss_the_cache(tmp_path: Path) -> None:
    """Fault: every image re-exported black under the same file names; the old embeddings must not return."""
    root = write_folder(tmp_path / "images")
    data = {"type": "folder", "root": str(root)}
    first = _embed_train(data, tmp_path / "cache")
    _blacken(root)
    second = _embed_train(data, tmp_path / "cache")
    assert not torch.allclose(first, second)
    uncached = extract(
        hfm.load_backbone("pathology/kaiko-vitb16", twin=True),
        load_data(data).train,
        progress=False,
        cache=False,
    )
    torch.testing.assert_close(second, uncached)


def test_same_layout_under_another_root_misses(tmp_path: Path) -> None:
    """Fault: a second root with the same class folders and file names but other pixels."""
    a = write_folder(tmp_path / "a", seed=0)
    b = write_folder(tmp_path / "b", seed=1)
    first = _embed_train({"type": "folder", "root": str(a)}, tmp_path / "cache")
    second = _embed_train({"type": "folder", "root": str(b)}, tmp_path / "cache")
    assert not torch.allclose(first, second)


def test_changed_npz_arrays_miss_the_cache(tmp_path: Path) -> None:
    """Fault: an npz whose images change (re-windowed, cleaned) while ids and labels stay the same."""
    rng = np.random.default_rng(0)
    labels = {s: np.arange(6) % 2 for s in ("train", "val", "test")}
    images = {s: rng.integers(0, 255, (6, 20, 20), dtype=np.uint8) for s in labels}
    path = write_npz(tmp_path / "d.npz", images, labels)
    first = _embed_train({"type": "npz", "path": str(path)}, tmp_path / "cache")
    write_npz(path, {s: 255 - a for s, a in images.items()}, labels)
    second = _embed_train({"type": "npz", "path": str(path)}, tmp_path / "cache")
    assert not torch.allclose(first, second)


def test_unchanged_files_still_hit_without_rehashing(tmp_path: Path, monkeypatch) -> None:
    """Control: untouched files keep hitting the cache, and their digests are remembered (no re-hash)."""
    from hfm.data import content

    root = write_folder(tmp_path / "images")
    data = {"type": "folder", "root": str(root)}
    _embed_train(data, tmp_path / "cache")
    hashed: list[Path] = []
    real = content._hash_file
    monkeypatch.setattr(content, "_hash_file", lambda p: hashed.append(p) or real(p))
    hits = STATS["cache_hits"]
    _embed_train(data, tmp_path / "cache")
    assert STATS["cache_hits"] == hits + 1
    assert hashed == []


def test_trained_backbone_never_reads_the_frozen_cache(tmp_path: Path) -> None:
    """Fault: the backbone's weights change in place while its pinned commit stays the same."""
    backbone = hfm.load_backbone("pathology/kaiko-vitb16", twin=True)
    backbone.revision = "a" * 40  # as if pinned to a Hub commit
    subset = load_data({"type": "folder", "root": str(write_folder(tmp_path / "images"))}).train
    frozen = extract(backbone, subset, progress=False, cache_dir=tmp_path / "cache")
    with torch.no_grad():
        for p in backbone.parameters():
            p.mul_(1.5)
    trained = extract(backbone, subset, progress=False, cache_dir=tmp_path / "cache")
    assert not torch.allclose(frozen, trained)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


def test_untouched_backbone_skips_the_weights_digest(tmp_path: Path, monkeypatch) -> None:
    """Control for the hot path: a backbone untouched since loading is keyed by its commit (no digest pass);
    one changed in place is digested once and then remembered."""
    from hfm import embeddings

    calls: list[int] = []
    real = embeddings._weights_digest
    monkeypatch.setattr(embeddings, "_weights_digest", lambda b: calls.append(1) or real(b))
    backbone = hfm.load_backbone("pathology/kaiko-vitb16", twin=True)
    subset = load_data({"type": "folder", "root": str(write_folder(tmp_path / "images"))}).train
    extract(backbone, subset, progress=False, cache_dir=tmp_path / "cache")
    assert calls == []
    with torch.no_grad():
        next(backbone.parameters()).add_(1.0)
    extract(backbone, subset, progress=False, cache_dir=tmp_path / "cache")
    extract(backbone, subset, progress=False, cache_dir=tmp_path / "cache")
    assert calls == [1]
