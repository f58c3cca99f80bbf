"""Settings hfm takes from the environment, read at call time: offline mode, cache folders, the Hub endpoint.

huggingface_hub reads its variables once, at import; hfm reads them each time it needs them, so a mirror, a
cache folder or an offline switch set later in the process still applies. Each setting is decided here and
nowhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_VARIABLES: tuple[str, ...] = ("HFM_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Any of these set to 1/true/yes/on makes hfm offline: nothing is downloaded, only caches are read."""
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "true", "yes", "on"}


def offline_variable() -> str | None:
    """The first offline variable that is set (for messages), or ``None`` when hfm may use the network."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return name
    return None


def offline() -> bool:
    """Whether hfm must not download anything (backbones, adapters, datasets)."""
    return offline_variable() is not None


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()


def hfm_cache_dir(kind: str) -> Path:
    """hfm's own cache folder for ``kind`` (``embeddings``, ``twins``, ``datasets``).

    ``$HFM_CACHE/<kind>``, else ``$XDG_CACHE_HOME/hfm/<kind>``, else ``~/.cache/hfm/<kind>``.
    """
    root = os.environ.get("HFM_CACHE")
    return (Path(root).expanduser() if root else _user_cache() / "hfm") / kind


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache, by huggingface_hub's rule: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub`` (``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME")
    return (Path(home).expanduser() if home else _user_cache() / "huggingface") / "hub"


def hub_endpoint() -> str:
    """The Hub endpoint: ``HF_ENDPOINT`` (a mirror), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
