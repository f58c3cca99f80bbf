"""hfm: fine-tune health foundation models from the Hugging Face Hub with few labels.

The public API is small; everything is imported lazily so ``import hfm`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_backbone": "hfm.backbones",
    "BackboneSpec": "hfm.backbones.spec",
    "load_data": "hfm.data",
    "episode": "hfm.data",
    "get_tuner": "hfm.tuners",
    "get_method": "hfm.methods",
    "load_adapter": "hfm.adapter",
    "run": "hfm.runner",
    "pretrain": "hfm.pretrain",
    "push": "hfm.hub.push",
    "pull": "hfm.hub.pull",
    "HfmError": "hfm.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hfm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
