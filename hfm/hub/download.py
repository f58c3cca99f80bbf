"""Resolve a Hub model to a local snapshot folder and the commit it holds; the only network code for backbones.

Everything downstream builds models from the folder this returns, so real models, pre-populated caches and
twins all go through one path. Offline use fails fast: with ``HF_HUB_OFFLINE=1`` (or an unreachable endpoint,
detected by a short TCP connect instead of huggingface_hub's retry loop) only the local cache is consulted.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from hfm.backbones.errors import BackboneAccessError, BackboneNotCachedError

DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT_S = 3.0
# Weights are fetched as safetensors; pickled weights only with ``allow_pickle`` and only when a revision has
# no safetensors at all (the loaders read them with ``torch.load(weights_only=True)``).
WEIGHT_PATTERNS: tuple[str, ...] = ("*.json", "*.safetensors", "*.txt", "*.md")
CODE_PATTERNS: tuple[str, ...] = ("*.py",)
# The pickled weight files timm, transformers and open_clip publish (not optimizer or training-args pickles).
PICKLE_PATTERNS: tuple[str, ...] = (
    "pytorch_model.bin",
    "pytorch_model-*.bin",
    "pytorch_model.pth",
    "model.pth",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "RETFound_*.pth",  # YukunZhou/RETFound_*: <repo name>.pth (rmaphoh/RETFound_MAE main_finetune.py)
)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class Snapshot:
    """A local snapshot folder and the commit it corresponds to."""

    path: Path
    commit: str | None


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache folder, read from the environment at call time (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def hub_endpoint() -> str:
    """The Hub endpoint (``HF_ENDPOINT`` for mirrors), read at call time."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_offline() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def endpoint_reachable(endpoint: str | None = None, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """A quick TCP connect to the endpoint: the cheap way to avoid huggingface_hub's long retry loop."""
    url = urlparse(endpoint or hub_endpoint())
    host = url.hostname
    if not host:
        return False
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _download_hint(name: str) -> str:
    return (
        f"run `hfm backbones download {name}` on a machine with access to the Hub and copy its Hugging Face "
        f"cache ({hub_cache_dir()}), or set HF_ENDPOINT to a reachable mirror (now {hub_endpoint()})"
    )


def _cached_snapshot(
    repo_id: str, revision: str | None, cache_dir: Path, allow_patterns: list[str] | None
) -> Snapshot | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=True,
            allow_patterns=allow_patterns,
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    return Snapshot(Path(folder), _commit_of(Path(folder)))


def _commit_of(folder: Path) -> str | None:
    return folder.name if _COMMIT.match(folder.name) and folder.parent.name == "snapshots" else None


def resolve_snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    allow_patterns: list[str] | None = None,
    token: str | bool | None = None,
    name: str | None = None,
    allow_pickle: bool = False,
) -> Snapshot:
    """Find (or download) a snapshot of ``repo_id`` and the commit it corresponds to.

    Args:
        repo_id: Hub repository id (``org/name``).
        revision: Branch, tag or commit; ``None`` means the default branch.
        cache_dir: Hub-layout cache to use; defaults to the Hugging Face cache (read at call time).
        local_files_only: Never touch the network (twins, or callers that know the files are local).
        allow_patterns: Which files to fetch; defaults to configs and safetensors weights.
        token: Hub token; ``None`` uses the logged-in token or ``HF_TOKEN``.
        name: How the user named the model, for the hint in error messages.
        allow_pickle: When the snapshot holds no ``*.safetensors``, also fetch the pickled weight files
            (:data:`PICKLE_PATTERNS`) of the same commit. Safetensors are always preferred: with them present,
            nothing pickled is fetched.

    Raises:
        BackboneNotCachedError: Offline (or the endpoint is unreachable) and the snapshot is not cached.
        BackboneAccessError: The Hub refused: gated, private, missing repo or revision.
    """
    patterns = list(allow_patterns) if allow_patterns is not None else list(WEIGHT_PATTERNS)

    def fetch(rev: str | None, files: list[str]) -> Snapshot:
        return _resolve(
            repo_id,
            revision=rev,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            patterns=files,
            token=token,
            name=name,
        )

    snapshot = fetch(revision, patterns)
    if not allow_pickle or any(snapshot.path.glob("*.safetensors")):
        return snapshot
    # Second pass at the same commit: only a snapshot without safetensors makes pickled weights worth fetching.
    try:
        return fetch(snapshot.commit or revision, patterns + list(PICKLE_PATTERNS))
    except BackboneNotCachedError:
        # Offline with a cache that lacks the pickles: the loader then names the missing weights and the
        # command that fetches them, clearer than "not in the cache" for a snapshot that is there.
        return snapshot


def _resolve(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
    patterns: list[str],
    token: str | bool | None,
    name: str | None,
) -> Snapshot:
    """One ``snapshot_download`` with these patterns: offline from the cache, else from the Hub."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    label = name or repo_id
    at = f" at revision {revision}" if revision else ""

    offline_reason = None
    if local_files_only:
        offline_reason = "local files only"
    elif is_offline():
        offline_reason = "HF_HUB_OFFLINE is set"
    elif not endpoint_reachable():
        offline_reason = f"the Hub endpoint {hub_endpoint()} is unreachable"
    if offline_reason is not None:
        snapshot = _cached_snapshot(repo_id, revision, cache, patterns)
        if snapshot is None:
            raise BackboneNotCachedError(
                f"{label!r} ({repo_id}{at}) is not in the cache {cache} and {offline_reason}: "
                + _download_hint(label)
            )
        return snapshot

    page = f"{hub_endpoint()}/{repo_id}"
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache,
            allow_patterns=patterns,
            token=token,
            endpoint=hub_endpoint(),
        )
    except (GatedRepoError, RepositoryNotFoundError) as err:
        # A cached copy still works (e.g. no token on this machine); otherwise say how to get access.
        snapshot = _cached_snapshot(repo_id, revision, cache, patterns)
        if snapshot is not None:
            return snapshot
        if not isinstance(err, GatedRepoError):
            raise BackboneAccessError(
                f"{repo_id} was not found on {hub_endpoint()} (or it is private): check the id, or log in "
                "(`hf auth login` / HF_TOKEN) if you have access"
            ) from err
        if _has_token(token):
            raise BackboneAccessError(
                f"{label!r} is gated and your token has no access yet: request access at {page} and wait "
                "for approval"
            ) from err
        raise BackboneAccessError(
            f"{label!r} is gated: accept its terms at {page}, then log in (`hf auth login`) or set HF_TOKEN"
        ) from err
    except RevisionNotFoundError as err:
        raise BackboneAccessError(
            f"revision {revision!r} of {repo_id} does not exist: check the commit, tag or branch at {page}"
        ) from err
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        snapshot = _cached_snapshot(repo_id, revision, cache, patterns)
        if snapshot is not None:
            return snapshot
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackboneNotCachedError(
            f"could not download {label!r} ({repo_id}{at}): {first}; " + _download_hint(label)
        ) from err
    path = Path(folder)
    return Snapshot(path, _commit_of(path))


def _has_token(token: str | bool | None) -> bool:
    if isinstance(token, str):
        return True
    if token is False:
        return False
    if os.environ.get("HF_TOKEN"):
        return True
    try:
        from huggingface_hub import get_token

        return get_token() is not None
    except Exception:  # pragma: no cover - token lookup never blocks a download error
        return False
