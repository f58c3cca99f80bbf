"""Resolve a Hub model to a local snapshot folder and the commit it holds; the only network code for backbones.

Everything downstream builds models from the folder this returns, so real models, pre-populated caches and
twins all go through one path. Offline use fails fast: with ``HFM_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` (or an unreachable endpoint,
detected by a short TCP connect instead of huggingface_hub's retry loop) only the local cache is consulted.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from hfm.env import hub_cache_dir, hub_endpoint, offline_variable
from hfm.errors import BackboneAccessError, BackboneNotCachedError
from hfm.policy import PICKLE_PATTERNS, LoadPolicy

CONNECT_TIMEOUT_S = 3.0
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Snapshot:
    """A local snapshot folder and the commit it corresponds to."""

    path: Path
    commit: str | None


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
    policy: LoadPolicy = LoadPolicy(),
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    name: str | None = None,
) -> Snapshot:
    """Find (or download) a snapshot of ``repo_id`` and the commit it corresponds to.

    Args:
        repo_id: Hub repository id (``org/name``).
        policy: The revision (``None``: the default branch) and what may be fetched: configs and
            safetensors always, repository code with ``trust_remote_code``, and with ``allow_pickle`` the
            pickled weight files (:data:`~hfm.policy.PICKLE_PATTERNS`) of the same commit when the snapshot
            holds no ``*.safetensors`` (with safetensors present, nothing pickled is fetched).
        cache_dir: Hub-layout cache to use; defaults to the Hugging Face cache (read at call time).
        local_files_only: Never touch the network (twins, or callers that know the files are local).
        token: Hub token; ``None`` uses the logged-in token or ``HF_TOKEN``.
        name: How the user named the model, for the hint in error messages.

    Raises:
        BackboneNotCachedError: Offline (or the endpoint is unreachable) and the snapshot is not cached.
        BackboneAccessError: The Hub refused: gated, private, missing repo or revision.
    """
    patterns = policy.download_patterns()
    revision = policy.revision

    def fetch(rev: str | None, files: list[str]) -> Snapshot:
        return resolve_files(
            repo_id, files, revision=rev, cache_dir=cache_dir, local_files_only=local_files_only, token=token,
            name=name,
        )  # fmt: skip

    snapshot = fetch(revision, patterns)
    if not policy.allow_pickle or any(snapshot.path.glob("*.safetensors")):
        return snapshot
    # Second pass at the same commit: only a snapshot without safetensors makes pickled weights worth fetching.
    try:
        return fetch(snapshot.commit or revision, patterns + list(PICKLE_PATTERNS))
    except BackboneNotCachedError:
        # Offline with a cache that lacks the pickles: the loader then names the missing weights and the
        # command that fetches them, clearer than "not in the cache" for a snapshot that is there.
        return snapshot


def resolve_files(
    repo_id: str,
    patterns: list[str],
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    name: str | None = None,
) -> Snapshot:
    """A snapshot holding only the files matching ``patterns`` (e.g. a text tower's config and tokenizer files).

    Same cache, offline rules and one-line errors as :func:`resolve_snapshot`, without its weight patterns.
    """
    return _resolve(
        repo_id,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        patterns=patterns,
        token=token,
        name=name,
    )


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
    elif offline_variable() is not None:
        offline_reason = f"{offline_variable()} is set"
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
