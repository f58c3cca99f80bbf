"""Download a published adapter: its config, weights and card, never pickle files.

Works against the Hub, a mirror (``HF_ENDPOINT``, read at call time) and, with ``HF_HUB_OFFLINE=1``, from the
local cache alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hfm import env
from hfm.errors import HubError
from hfm.hub import _net
from hfm.hub.folders import CONFIG_NAME

# Everything an adapter needs; pickle formats (.bin, .pt, .pth, .pkl, .ckpt) are never downloaded.
ADAPTER_PATTERNS = ["*.json", "*.safetensors", "README.md", "*.yaml", "*.csv", "*.md"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def download_adapter(repo_id: str, revision: str | None = None) -> Path:
    """Download the adapter in ``repo_id`` (at ``revision``) into the Hub cache and return its folder.

    This is what ``hfm.load_adapter("org/name")`` calls for names that are not local folders.

    Raises:
        HubError: Unknown repo or revision, no access, offline without a cached copy, or not an hfm adapter.
    """
    if not _REPO_ID.match(repo_id):
        raise HubError(f"{repo_id!r} is neither a local folder nor a Hub repository id (org/name)")
    offline = env.offline_variable()
    where = f"the local cache ({offline}=1)" if offline else env.hub_endpoint()
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=ADAPTER_PATTERNS,
            cache_dir=env.hub_cache_dir(),
            endpoint=env.hub_endpoint(),
            token=_net.token(),
            local_files_only=offline is not None,
        )
    except GatedRepoError as err:
        raise HubError(f"{repo_id} is gated: accept its terms on the Hub page, then pull again") from err
    except RevisionNotFoundError as err:
        raise HubError(f"{repo_id} has no revision {revision!r}; check the branch, tag or commit") from err
    except RepositoryNotFoundError as err:
        raise HubError(
            f"{repo_id} not found on {where}: check the name, or log in (`hf auth login`) if it is private"
        ) from err
    except LocalEntryNotFoundError as err:
        hint = f"unset {offline} to download it" if offline else f"check the connection to {where}"
        raise HubError(f"{repo_id} is not in the local cache and cannot be downloaded: {hint}") from err
    except Exception as err:
        if _net.is_transient(err) or _net.status_of(err) is not None:
            raise HubError(
                f"downloading {repo_id} from {where} failed ({_net.describe(err)}); try again"
            ) from err
        raise
    path = Path(folder)
    if not (path / CONFIG_NAME).is_file():
        raise HubError(
            f"{repo_id} has no {CONFIG_NAME}: it is not an hfm adapter (was it pushed with `hfm push`?)"
        )
    return path


def pull(repo_id: str, revision: str | None = None) -> Path:
    """Download an adapter from the Hub and return the local folder (``hfm pull org/name``)."""
    return download_adapter(repo_id, revision=revision)
