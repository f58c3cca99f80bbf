"""What adapts during pretraining: all weights, the last blocks, LoRA (peft), or ExPLoRA's mix of both.

LoRA goes through peft on the spec's default targets (as the ``lora`` tuner does) and is merged into the
weights before export, so the exported backbone loads without peft.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from torch import nn

from hfm.pretrain.config import PretrainError

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone
    from hfm.pretrain.config import AdaptBlock

# Where libraries keep their repeated blocks (timm ViT/Eva, timm ConvNeXt/Swin, transformers ViT/DINOv2).
_BLOCK_PATHS = ("blocks", "stages", "layers", "encoder.layer", "encoder.layers", "trunk.blocks")
# Final norms that belong to the last block's output (timm, transformers).
_FINAL_NORMS = ("norm", "fc_norm", "head_norm", "layernorm", "post_layernorm", "trunk.norm")


def _get(module: nn.Module, path: str) -> Any:
    for part in path.split("."):
        module = getattr(module, part, None)  # type: ignore[assignment]
        if module is None:
            return None
    return module


def block_list(model: nn.Module) -> list[nn.Module]:
    """The model's blocks in order (transformer blocks, CNN stages; timm ResNets: ``layer1..layer4``)."""
    for path in _BLOCK_PATHS:
        found = _get(model, path)
        if isinstance(found, (nn.ModuleList, nn.Sequential)) and len(found) > 0:
            return list(found)
    stages = [
        getattr(model, f"layer{i}")
        for i in range(1, 8)
        if isinstance(getattr(model, f"layer{i}", None), nn.Module)
    ]
    return stages


def last_blocks(model: nn.Module, count: int) -> list[nn.Module]:
    """The last ``count`` blocks plus the final norm(s)."""
    blocks = block_list(model)
    if not blocks:
        raise PretrainError(
            f"cannot find the blocks of {type(model).__name__} to adapt the last {count}: use adapt.mode 'all'"
        )
    if count > len(blocks):
        raise PretrainError(f"adapt.blocks is {count} but the backbone has only {len(blocks)} blocks")
    chosen = blocks[-count:]
    for path in _FINAL_NORMS:
        norm = _get(model, path)
        if isinstance(norm, nn.Module) and not isinstance(norm, nn.Identity):
            chosen.append(norm)
    return chosen


def _lora_targets(backbone: Backbone) -> Any:
    spec_targets = backbone.spec.lora_targets
    targets = spec_targets if isinstance(spec_targets, str) else list(spec_targets)
    if not targets:
        raise PretrainError(
            f"backbone {backbone.spec.name!r} has no default LoRA targets: use adapt.mode 'all' or 'last_blocks'"
        )
    return targets


def apply(backbone: Backbone, block: AdaptBlock) -> None:
    """Make the chosen parameters of ``backbone`` trainable (in place); LoRA wraps ``backbone.model``."""
    if block.mode == "all":
        backbone.requires_grad_(True)
        return
    full = last_blocks(backbone.model, block.blocks) if block.mode in ("last_blocks", "explora") else []
    if block.mode in ("lora", "explora"):
        import peft

        config = peft.LoraConfig(
            r=block.r, lora_alpha=block.alpha, target_modules=_lora_targets(backbone), bias="none"
        )
        backbone.requires_grad_(False)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning)
                backbone.model = peft.get_peft_model(backbone.model, config)
        except ValueError as err:
            raise PretrainError(
                f"LoRA targets {config.target_modules!r} match nothing in {backbone.spec.name!r}: "
                "use adapt.mode 'all' or 'last_blocks'"
            ) from err
    else:
        backbone.requires_grad_(False)
    for module in full:
        module.requires_grad_(True)
    if not any(p.requires_grad for p in backbone.parameters()):
        raise PretrainError(f"adapt.mode {block.mode!r} left no backbone parameter to train")


def merged(backbone: Backbone) -> nn.Module:
    """The library model with any LoRA update merged in (the model itself when there is none)."""
    import copy

    model = backbone.model
    if type(model).__name__ == "PeftModel" or hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()  # type: ignore[operator,no-any-return]
    return model
