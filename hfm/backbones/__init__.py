"""Backbones: health foundation models from the Hub behind one interface (image batch in, embedding out).

``load_backbone`` loads a catalog entry (``pathology/uni``), an ad-hoc Hub id (``hf-hub:org/name`` for timm,
``org/name`` for transformers) or a local folder (``local-dir:/path``); ``twin=True`` gives a tiny
random-weight twin of a catalog entry, offline. Weights are read as safetensors; models that publish only
pickled weights (UNI, BiomedCLIP, H-optimus-0 ...) need ``allow_pickle=True``, which reads them with
``torch.load(weights_only=True)``. Exports are imported lazily so that listing the catalog or
reporting a download error does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_backbone": "hfm.backbones.loaders",
    "Backbone": "hfm.backbones.base",
    "BackboneSpec": "hfm.backbones.spec",
    "ImageTransform": "hfm.backbones.transforms",
    "CATALOG": "hfm.backbones.catalog",
    "find_spec": "hfm.backbones.catalog",
    "get_spec": "hfm.backbones.catalog",
    "list_specs": "hfm.backbones.catalog",
    "write_twin": "hfm.backbones.twins",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hfm.backbones' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
