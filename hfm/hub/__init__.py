"""The only part of hfm that talks to the network: downloads, pushes, pulls and model cards.

Public functions are imported lazily so that ``import hfm.hub`` stays cheap. ``hfm.push`` and ``hfm.pull`` are
the publishing functions (``hfm.hub.push`` and ``hfm.hub.pull`` are their modules).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "render_card": "hfm.hub.cards",
    "resolve_snapshot": "hfm.hub.download",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hfm.hub' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
