"""Visual prompt tuning (VPT): learned prompt tokens inserted after the class and register tokens.

After Jia et al., "Visual Prompt Tuning" (ECCV 2022): *shallow* prompts enter once, at the input of the first
block; *deep* prompts are fresh at the input of every block (the previous block's outputs at the prompt
positions are dropped). The backbone stays frozen; prompts and head train. peft cannot host this, so hfm runs
the library's own embedding, block and norm modules itself, for timm ``VisionTransformer`` models and
transformers ViT / DINOv2 (with or without registers) models.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hfm.errors import TunerError
from hfm.tuners import register_tuner
from hfm.tuners.base import AdaptedModel, TunerConfig, positive

_TRANSFORMERS_TYPES = ("vit", "dinov2", "dinov2_with_registers")


@dataclasses.dataclass
class VptConfig(TunerConfig):
    """VPT parameters.

    Attributes:
        num_tokens: Prompt tokens per layer.
        deep: Fresh prompts at every block (deep VPT) instead of only at the input (shallow).
        dropout: Dropout on the prompt tokens while training.
    """

    num_tokens: int = 10
    deep: bool = False
    dropout: float = 0.0

    def check(self, tuner: str) -> None:
        positive(tuner, num_tokens=self.num_tokens)
        if not 0.0 <= self.dropout < 1.0:
            raise TunerError(f"tuner {tuner!r}: parameter 'dropout' must be in [0, 1), got {self.dropout}")


@dataclasses.dataclass
class _VitParts:
    """The pieces of a ViT that VPT runs itself."""

    embed: Callable[[torch.Tensor], torch.Tensor]
    blocks: list[nn.Module]
    run_block: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    norm: nn.Module
    num_prefix: int
    width: int
    patch_size: int
    pooler: Callable[[torch.Tensor], torch.Tensor] | None


def _run_transformers_layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = layer(x, None)
    return out[0] if isinstance(out, tuple) else out


def vit_parts(backbone: Any) -> _VitParts:
    """Find embedding, blocks and final norm of a supported ViT, or raise :class:`TunerError`."""
    model, family = backbone.model, backbone.family
    if family == "timm":
        from timm.models.vision_transformer import VisionTransformer

        if isinstance(model, VisionTransformer):
            m = model

            def embed(x: torch.Tensor) -> torch.Tensor:
                return m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))

            def pooler(tokens: torch.Tensor) -> torch.Tensor:
                return m.forward_head(tokens, pre_logits=True)

            patch = m.patch_embed.patch_size
            return _VitParts(
                embed=embed,
                blocks=list(m.blocks),
                run_block=lambda blk, x: blk(x),
                norm=m.norm,
                num_prefix=int(m.num_prefix_tokens),
                width=int(m.embed_dim),
                patch_size=int(patch[0] if isinstance(patch, (tuple, list)) else patch),
                pooler=pooler,
            )
    elif family == "transformers":
        config: Any = getattr(model, "config", None)
        if getattr(config, "model_type", None) in _TRANSFORMERS_TYPES:
            layers = getattr(model, "layers", None)
            if layers is None:
                layers = model.encoder.layer
            hf_pooler = getattr(model, "pooler", None)
            return _VitParts(
                embed=lambda x: model.embeddings(x),
                blocks=list(layers),
                run_block=_run_transformers_layer,
                norm=model.layernorm,
                num_prefix=1 + int(getattr(config, "num_register_tokens", 0) or 0),
                width=int(config.hidden_size),
                patch_size=int(config.patch_size),
                pooler=hf_pooler if hf_pooler is not None else (lambda tokens: tokens[:, 0]),
            )
    raise TunerError(
        f"vpt is not supported for this backbone ({backbone.spec.name}, {family} "
        f"{type(model).__name__}): use lora, bitfit, full or probe"
    )


@register_tuner("vpt")
class VptModel(AdaptedModel):
    """Frozen ViT with learned prompt tokens (shallow or deep) and a head."""

    config_cls = VptConfig
    config: VptConfig
    default_lr = 5e-3
    frozen_backbone_mode = True

    @classmethod
    def check_backbone(cls, backbone: Any) -> None:
        """Only the ViTs :func:`vit_parts` knows take prompts."""
        vit_parts(backbone)

    def setup(self) -> None:
        self.backbone.requires_grad_(False)
        parts = vit_parts(self.backbone)
        layers = len(parts.blocks) if self.config.deep else 1
        prompts = torch.empty(layers, self.config.num_tokens, parts.width)
        # Uniform init from the VPT paper (Jia et al. 2022): xavier range for a patch-to-width projection.
        bound = math.sqrt(6.0 / float(3 * parts.patch_size**2 + parts.width))
        nn.init.uniform_(prompts, -bound, bound)
        self.prompts = nn.Parameter(prompts)
        self.prompt_dropout = nn.Dropout(self.config.dropout)

    def prompted_tokens(self, images: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """Final normalised tokens with the prompt positions removed ``[B, T, width]``.

        Args:
            images: Normalised image batch.
            prompts: ``[layers, n, width]`` prompts; defaults to the learned ones (an empty tensor runs the
                plain backbone, which tests use to check this path against ``backbone.tokens``).
        """
        parts = vit_parts(self.backbone)
        prompts = self.prompts if prompts is None else prompts
        n, pre = prompts.shape[1], parts.num_prefix
        x = parts.embed(images)
        batch = x.shape[0]
        for i, block in enumerate(parts.blocks):
            if n and (i == 0 or prompts.shape[0] > 1):
                p = self.prompt_dropout(prompts[i if prompts.shape[0] > 1 else 0]).to(x.dtype)
                p = p.unsqueeze(0).expand(batch, -1, -1)
                rest = x[:, pre:] if i == 0 else x[:, pre + n :]
                x = torch.cat([x[:, :pre], p, rest], dim=1)
            x = parts.run_block(block, x)
        x = parts.norm(x)
        return torch.cat([x[:, :pre], x[:, pre + n :]], dim=1) if n else x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.prompted_tokens(images)
        if self.backbone.spec.pooling == "pooler":
            pooler = vit_parts(self.backbone).pooler
            assert pooler is not None
            return pooler(tokens)
        return self.backbone.pool(tokens)
