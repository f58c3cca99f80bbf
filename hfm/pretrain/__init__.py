"""Self-supervised (continued) pretraining: ``hfm pretrain RECIPE`` / ``hfm.pretrain(recipe)``.

The objectives (DINO self-distillation, the default; MAE masked reconstruction for timm ViTs) build on
lightly's heads, losses, momentum update, masked-ViT wrappers and view transforms (the optional extra
``hfm-hub[ssl]``); the output is a backbone folder in its library's own layout plus hfm's spec and a model card,
which ``hfm.load_backbone("local-dir:OUT")`` and every recipe accept.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from hfm.pretrain.config import PretrainError, PretrainRecipe, load_recipe, parse_recipe
from hfm.pretrain.loop import PretrainResult, pretrain

__all__ = ["PretrainError", "PretrainRecipe", "PretrainResult", "load_recipe", "parse_recipe", "pretrain"]


class _CallablePackage(types.ModuleType):
    """``hfm.pretrain`` is both this package and the function: once the package is imported, Python binds the
    name ``hfm.pretrain`` to the package, so calling the package runs :func:`pretrain`."""

    def __call__(self, *args: Any, **kwargs: Any) -> PretrainResult:
        return pretrain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
