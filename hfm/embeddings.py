"""Batched embedding extraction through a frozen backbone, with an on-disk cache.

Every k, seed and probe of a sweep reuses one extraction: the result is cached keyed by the backbone (name,
Hub id, resolved commit, twin flag, pooling, and a digest of its current weights, so a trained or edited
backbone never reads or writes the frozen one's entries), its preprocessing, the precision, the data
fingerprint and split, and the content digest of the images (:mod:`hfm.data.content`: new pixels under the
same file names miss the cache). Changing any of these misses the cache; nothing else does, so the cache
survives restarts.

Under ``torchrun`` / ``accelerate launch`` every process embeds a strided shard and the shards are gathered,
so every process ends with all rows in the original order.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hfm._fs import describe_storage, storage_cause
from hfm.data.dataset import as_dataset, data_content, data_fingerprint
from hfm.devices import autocast, gather_rows, process_info, resolve_precision, shard
from hfm.env import hfm_cache_dir

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone

CACHE_FORMAT = 2
#: Counters a test (or a curious user) can read: backbone forward batches run, cache hits, cache writes.
STATS: dict[str, int] = {"forward_batches": 0, "cache_hits": 0, "cache_writes": 0}


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where embeddings are cached: ``cache_dir``, else ``$HFM_CACHE/embeddings``, else ``~/.cache/hfm/embeddings``.

    Read at call time, so tests and users can change ``HFM_CACHE`` after import.
    """
    return Path(cache_dir) if cache_dir is not None else hfm_cache_dir("embeddings")


# -- cache --------------------------------------------------------------------------------------------------
def _weights_digest(backbone: Backbone) -> str:
    """A cheap digest of the weights, for backbones without a resolved commit (local folders, ad-hoc)."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in backbone.named_parameters():
            q = p.detach().float()
            h.update(f"{name}:{tuple(q.shape)}:{q.sum().item():.8e}:{q.abs().sum().item():.8e}".encode())
    return h.hexdigest()[:16]


def _weights_identity(backbone: Backbone) -> str | None:
    """``None`` when the weights are those of the pinned commit (untouched since loading), else their digest.

    The digest reads every parameter (seconds for a ViT-B on CPU), so it is remembered per parameter state.
    """
    if backbone.revision is not None and backbone.weights_pristine():
        return None
    versions = [p._version for p in backbone.parameters()]
    memo = getattr(backbone, "_hfm_weights_memo", None)
    if memo is not None and memo[0] == versions:
        return str(memo[1])
    digest = _weights_digest(backbone)
    backbone._hfm_weights_memo = (versions, digest)  # type: ignore[assignment]
    return digest


def cache_key(
    backbone: Backbone, *, fingerprint: str, split: str | None, precision: str, content: str | None = None
) -> dict[str, Any]:
    """Everything an extraction depends on; its hash names the cache file.

    A pinned commit names the weights only while they are untouched since loading; a trained or edited
    backbone is keyed by a digest of its weights instead (:func:`_weights_identity`).
    """
    spec = backbone.spec
    return {
        "format": CACHE_FORMAT,
        "backbone": spec.name,
        "hub_id": spec.hub_id,
        "revision": backbone.revision,
        "weights": _weights_identity(backbone),
        "twin": bool(backbone.is_twin),
        "pooling": spec.pooling,
        "embed_dim": spec.embed_dim,
        "preprocessing": backbone.transform.to_dict(),
        "precision": precision,
        "data": fingerprint,
        "content": content,
        "split": split,
    }


def _cache_path(root: Path, key: dict[str, Any]) -> tuple[Path, str]:
    text = json.dumps(key, sort_keys=True)
    return root / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.safetensors", text


def _read_cache(path: Path, key_text: str) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("key") != key_text:
                return None
            return f.get_tensor("embeddings")
    except Exception:  # a truncated or foreign file: treat as a miss and overwrite it
        return None


def _write_cache(path: Path, key_text: str, embeddings: torch.Tensor) -> None:
    """Write one cache entry atomically; a full or unwritable cache disk only warns (the cache is an optimisation)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        save_file({"embeddings": embeddings.contiguous()}, tmp, metadata={"key": key_text})
        os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - OSError, or safetensors' own error wrapping one
        if storage_cause(err) is None and not isinstance(err, OSError):
            raise
        warnings.warn(
            f"hfm: embeddings not cached in {path.parent} ({describe_storage(err)}); continuing without the cache",
            stacklevel=3,
        )
        return
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    STATS["cache_writes"] += 1


# -- extraction ---------------------------------------------------------------------------------------------
def _batches(loader: DataLoader[Any]) -> Iterator[torch.Tensor]:
    for batch in loader:
        yield batch[0] if isinstance(batch, (list, tuple)) else batch


def _embed(
    backbone: Backbone,
    dataset: Dataset[Any],
    indices: Sequence[int],
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    precision: str,
    progress: bool,
) -> torch.Tensor:
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,  # type: ignore[arg-type]
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    outputs: list[torch.Tensor] = []
    bar = tqdm(total=len(indices), desc="embeddings", unit="img", disable=not progress, leave=False)
    with torch.inference_mode(), autocast(precision, device), bar:
        for images in _batches(loader):
            outputs.append(backbone(images.to(device, non_blocking=True)))
            STATS["forward_batches"] += 1
            bar.update(len(images))
    if not outputs:
        return torch.zeros((0, backbone.spec.embed_dim), dtype=torch.float32)
    return torch.cat(outputs).float()


def extract(
    backbone: Backbone,
    data: Any,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
    fingerprint: str | None = None,
    split: str | None = None,
    precision: str = "auto",
    device: str | torch.device | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Pooled embeddings ``[N, embed_dim]`` (float32, CPU) of every image in ``data``, cached on disk.

    Args:
        backbone: The frozen backbone (moved to ``device`` and put in eval mode while extracting).
        data: A :class:`hfm.data.Subset` (read through ``backbone.transform``) or a torch dataset yielding
            ``image`` or ``(image, label, ...)`` such as :class:`hfm.data.ImageDataset`.
        batch_size: Images per forward pass.
        num_workers: DataLoader worker processes (decoding and preprocessing run there).
        cache_dir: Cache folder; default ``$HFM_CACHE/embeddings`` (else ``~/.cache/hfm/embeddings``).
        cache: Read and write the cache; ``False`` always extracts.
        fingerprint: Data fingerprint for the cache key; read from the Subset when not given. Without one
            (and for datasets with augmentation) nothing is cached.
        split: Split name, part of the cache key.
        precision: ``auto`` (bf16 on a capable GPU, fp32 on CPU), ``fp32`` or ``bf16``.
        device: Where to run; default this process's accelerator device.
        progress: Show a progress bar (main process only).

    Returns:
        Embeddings in the order of ``data``, identical on every process.
    """
    rank, world, default_device = process_info()
    device = torch.device(device) if device is not None else default_device
    precision = resolve_precision(precision, device)
    dataset = as_dataset(data, backbone.transform)
    n = len(dataset)  # type: ignore[arg-type]

    fingerprint = fingerprint or data_fingerprint(data)
    use_cache = cache and fingerprint is not None and getattr(data, "augment", None) is None
    path = key_text = None
    if use_cache:
        assert fingerprint is not None
        key = cache_key(
            backbone, fingerprint=fingerprint, split=split, precision=precision, content=data_content(data)
        )
        path, key_text = _cache_path(cache_root(cache_dir), key)
        cached = _read_cache(path, key_text)
        if cached is not None and len(cached) == n:
            STATS["cache_hits"] += 1
            return cached

    was_training = backbone.training
    backbone.to(device).eval()
    try:
        local = _embed(
            backbone,
            dataset,
            shard(n, rank, world),
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            precision=precision,
            progress=progress and rank == 0,
        )
    finally:
        backbone.train(was_training)
    embeddings = gather_rows(local, n, rank, world, device)
    if use_cache and rank == 0 and path is not None and key_text is not None:
        _write_cache(path, key_text, embeddings)
    return embeddings
