"""Content digests of the images a subset reads, so caches keyed by data change when the pixels change.

A data fingerprint (:meth:`hfm.data.splits.Subset.fingerprint`) names ids and labels only: it seeds the
few-shot draws, which must not move when a file is re-exported. What a backbone sees is the content, so the
embedding cache also keys on these digests.

* Files: one BLAKE2b digest of each file's bytes. Hashing every image on every call would cost a full read of
  the data set, so digests are remembered in ``$HFM_CACHE/content/<folder>.json`` by (size, mtime): a later
  call only ``stat``\\ s each file and re-hashes the ones whose size or modification time changed.
* Arrays (``.npz``): one digest per row of the array's bytes, shape and dtype, computed once per load.

Readers expose ``content_digests() -> list[str]`` (one per position); a reader without it (a custom reader)
yields no digest and the subset's content fingerprint is ``None``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hfm.env import hfm_cache_dir

_CHUNK = 1 << 20


def _hash_file(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _index_path(root: Path) -> Path | None:
    try:
        folder = hfm_cache_dir("content")
    except Exception:  # noqa: BLE001 - an unusable cache folder only costs re-hashing
        return None
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
    return Path(folder) / f"{name}.json"


def file_digests(root: Path, relpaths: Sequence[str]) -> list[str]:
    """Content digest of each file ``root / relpath``, re-hashing only files whose size or mtime changed.

    The remembered digests are an optimisation: an unreadable or unwritable index is ignored.
    """
    index_file = _index_path(root)
    index: dict[str, list[Any]] = {}
    if index_file is not None and index_file.is_file():
        try:
            index = json.loads(index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            index = {}
    digests: list[str] = []
    changed = False
    for relpath in relpaths:
        path = root / relpath
        st = path.stat()
        known = index.get(relpath)
        if known is not None and known[0] == st.st_size and known[1] == st.st_mtime_ns:
            digests.append(str(known[2]))
            continue
        digest = _hash_file(path)
        index[relpath] = [st.st_size, st.st_mtime_ns, digest]
        digests.append(digest)
        changed = True
    if changed and index_file is not None:
        _save_index(index_file, index)
    return digests


def _save_index(path: Path, index: dict[str, list[Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(index), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a full or read-only cache disk: digests are simply recomputed next time
        tmp.unlink(missing_ok=True)


def array_digests(array: np.ndarray) -> list[str]:
    """One digest per row (image) of an image stack: its bytes, shape and dtype."""
    out = []
    for row in array:
        row = np.ascontiguousarray(row)
        h = hashlib.blake2b(f"{row.dtype.str}{row.shape}".encode(), digest_size=16)
        h.update(row.data)
        out.append(h.hexdigest())
    return out


def content_fingerprint(digests: Sequence[str] | None) -> str | None:
    """One hash over a subset's per-image digests (order-sensitive); ``None`` when unknown."""
    if digests is None:
        return None
    h = hashlib.sha256()
    for digest in digests:
        h.update(digest.encode())
        h.update(b"\n")
    return h.hexdigest()[:32]
