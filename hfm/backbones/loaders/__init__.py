"""``load_backbone``: one path for every backbone, real or twin, catalog entry or ad-hoc Hub id.

1. Resolve the name to a spec (catalog) or to a Hub id / local folder (ad-hoc).
2. Resolve a local snapshot folder and its commit through :func:`hfm.hub.download.resolve_snapshot` (twins: the
   twin cache, local files only).
3. Build the model from that folder with the spec's exact loader kwargs (timm, transformers or open_clip), then
   check that it produces the embedding the spec promises.

Weights are safetensors. Some flagship models publish only pickled weights (``pytorch_model.bin``); those load
only when the user passes ``allow_pickle=True`` by name, and are then read with PyTorch's restricted unpickler
(``torch.load(..., weights_only=True)``), never with plain ``pickle``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from hfm.backbones.base import Backbone
from hfm.backbones.loaders.clip_loader import build_open_clip, open_clip_spec, open_clip_width
from hfm.backbones.loaders.common import detect_family
from hfm.backbones.loaders.hf_loader import (
    build_transformers,
    transformers_prefix_tokens,
    transformers_spec,
    transformers_width,
)
from hfm.backbones.loaders.timm_loader import build_timm, timm_prefix_tokens, timm_spec, timm_width
from hfm.backbones.names import HF_HUB_PREFIX, LOCAL_DIR_PREFIX, resolve_name
from hfm.backbones.spec import BackboneSpec
from hfm.errors import BackboneLoadError, BackboneNotFoundError, RemoteCodeError
from hfm.policy import LoadPolicy

# Written by ``hfm pretrain`` next to the library's own files: the spec the folder loads with.
SPEC_FILE = "hfm_spec.json"

__all__ = ["HF_HUB_PREFIX", "LOCAL_DIR_PREFIX", "build_from_folder", "load_backbone", "resolve_name"]


def load_backbone(
    name_or_id: str,
    *,
    revision: str | None = None,
    twin: bool = False,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    policy: LoadPolicy | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Backbone:
    """Load a backbone by catalog name, ``hf-hub:org/name`` (timm), ``org/name`` (transformers) or folder.

    Args:
        name_or_id: ``pathology/uni`` (or an unambiguous short name ``uni``), ``hf-hub:org/name``,
            ``org/name`` or ``local-dir:/path``.
        revision: Branch, tag or commit; default the spec's pinned revision, else the default branch. The
            commit actually loaded is recorded as ``backbone.revision``.
        twin: Load the tiny random-weight twin of a catalog entry instead (offline, deterministic).
        trust_remote_code: Allow code from the Hub repository (only when you trust it).
        allow_pickle: When the revision has no safetensors, fetch and read its pickled weights
            (``pytorch_model.bin``, ``open_clip_pytorch_model.bin`` ...) with ``torch.load(weights_only=True)``,
            which rebuilds tensors only and refuses arbitrary objects. Safetensors are always preferred.
        policy: The three above as one :class:`~hfm.policy.LoadPolicy` (what recipes and adapters pass);
            give either it or the keywords.
        device: Where to put the model.
        dtype: Parameter dtype (default float32).

    Raises:
        BackboneNotFoundError, BackboneNotCachedError, BackboneAccessError, RemoteCodeError,
        BackboneLoadError: all one-line :class:`hfm.errors.BackboneError` subclasses.
    """
    from hfm.backbones import twins
    from hfm.hub.download import resolve_snapshot

    policy = LoadPolicy.from_keywords(
        policy, revision=revision, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
    )
    spec, repo, _ = resolve_name(name_or_id)
    if twin:
        if spec is None:
            raise BackboneNotFoundError(
                f"twins exist only for catalog entries, not {name_or_id!r}: see `hfm backbones list`"
            )
        twins.write_twin(spec)
        snapshot = resolve_snapshot(
            spec.hub_id, cache_dir=twins.twin_cache_dir(), local_files_only=True, name=spec.name
        )
        spec = twins.twin_build_spec(spec, snapshot.path)
    elif name_or_id.strip().startswith(LOCAL_DIR_PREFIX):
        folder = Path(repo).expanduser()
        if not folder.is_dir():
            raise BackboneNotFoundError(f"local-dir: folder {folder} does not exist")
        return build_from_folder(  # marks its weights pristine
            folder,
            None,
            name=name_or_id,
            hub_id=str(folder),
            revision=_commit_from_path(folder),
            policy=policy,
            device=device,
            dtype=dtype,
        )
    else:
        if spec is not None and spec.trust_remote_code and not policy.trust_remote_code:
            raise RemoteCodeError(
                f"{spec.name} runs code from its Hub repository {spec.hub_id}: if you trust it, pass "
                "trust_remote_code=True (CLI: --trust-remote-code)"
            )
        snapshot = resolve_snapshot(
            repo,
            policy=policy.pinned(spec.revision if spec else None),
            name=spec.name if spec else name_or_id,
        )
    return build_from_folder(
        snapshot.path,
        spec,
        name=spec.name if spec else name_or_id,
        hub_id=repo,
        revision=snapshot.commit,
        twin=twin,
        policy=policy,
        device=device,
        dtype=dtype,
    )


def _commit_from_path(folder: Path) -> str | None:
    """The commit of a folder inside a Hub cache (``.../snapshots/<commit>``), else ``None``."""
    from hfm.hub.download import _commit_of

    return _commit_of(folder.resolve())


def build_from_folder(
    folder: Path,
    spec: BackboneSpec | None,
    *,
    name: str,
    hub_id: str,
    revision: str | None,
    twin: bool = False,
    policy: LoadPolicy = LoadPolicy(),
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Backbone:
    """Build a :class:`Backbone` from a local model folder; ``revision`` is the commit it holds (recorded).

    With a spec (catalog entry) the spec's loader and kwargs are used and the result is checked against it;
    without one (ad-hoc id or folder) the library is detected from the files and the spec is derived from the
    model and its preprocessing config. The policy's ``allow_pickle`` lets a folder without safetensors load
    from its pickled weights (restricted to tensors, see :func:`load_backbone`); its ``trust_remote_code``
    lets a transformers model run the folder's code.
    """
    if spec is None:
        spec = folder_spec(folder, name=name, hub_id=hub_id)
    # A catalog spec names its library; otherwise the files decide (an hf-hub: id may hold any library).
    loader = spec.loader if spec is not None else detect_family(folder)
    model: nn.Module
    if loader == "timm":
        model = build_timm(folder, spec, label=name, policy=policy)
        if spec is None:
            spec = timm_spec(model, name=name, hub_id=hub_id)
    elif loader == "transformers":
        model = build_transformers(folder, spec, label=name, policy=policy)
        if spec is None:
            spec = transformers_spec(model, folder, name=name, hub_id=hub_id)
    elif loader == "open_clip":
        model = build_open_clip(folder, spec, label=name, policy=policy)
        if spec is None:
            spec = open_clip_spec(model, folder, name=name, hub_id=hub_id)
    else:  # pragma: no cover - BackboneSpec validates loaders
        raise BackboneLoadError(f"{name}: unknown loader {loader!r}")
    width, prefix = _layout(model, spec)
    if twin:
        from hfm.backbones.twins import twin_spec

        spec = twin_spec(spec, width)
    check_spec(spec, width=width, prefix=prefix)
    backbone = Backbone(
        model, spec, family=loader, revision=revision, is_twin=twin, source_path=folder, token_width=width
    )
    backbone.eval()
    if device is not None or dtype is not None:
        backbone.to(device=device, dtype=dtype)
    backbone.mark_pristine()
    return backbone


def folder_spec(folder: Path, *, name: str, hub_id: str) -> BackboneSpec | None:
    """The spec a folder written by ``hfm pretrain`` carries in ``hfm_spec.json`` (pooling, loader kwargs...).

    Its name and Hub id become the ones it is loaded by, so caches never mix it up with its base model.
    """
    path = folder / SPEC_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BackboneSpec.from_dict(data).replace(name=name, hub_id=hub_id, revision=None)
    except (ValueError, TypeError) as err:
        raise BackboneLoadError(f"{name}: {path} is not a valid hfm backbone spec ({err})") from err


def _layout(model: nn.Module, spec: BackboneSpec) -> tuple[int, int | None]:
    """``(embedding width, prefix tokens)`` the loaded model actually has (prefix ``None``: not checkable)."""
    if spec.loader == "timm":
        return timm_width(model), timm_prefix_tokens(model)
    if spec.loader == "transformers":
        return transformers_width(model), transformers_prefix_tokens(model)
    trunk = getattr(model, "trunk", None)
    prefix = int(getattr(trunk, "num_prefix_tokens", 1)) if trunk is not None else None
    width = open_clip_width(model, "tokens")
    return width, prefix


def check_spec(spec: BackboneSpec, *, width: int, prefix: int | None) -> None:
    """Catch a spec whose ``embed_dim``, pooling or prefix tokens do not fit the loaded model."""
    if spec.pooling == "pooler":
        return  # checked by shape at first use; the pooler's size is the library's business
    expected = 2 * width if spec.pooling == "cls+mean" else width
    if spec.embed_dim != expected:
        raise BackboneLoadError(
            f"{spec.name}: the spec says embed_dim={spec.embed_dim} with pooling {spec.pooling!r}, but the loaded "
            f"model has tokens of width {width} (so {expected}): fix the catalog entry"
        )
    if prefix is not None and spec.num_prefix_tokens != prefix:
        raise BackboneLoadError(
            f"{spec.name}: the spec says num_prefix_tokens={spec.num_prefix_tokens}, but the loaded model "
            f"prepends {prefix} class/register tokens: fix the catalog entry"
        )
