"""One interface over every backbone: image batch in, pooled embedding out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hfm.backbones.spec import BackboneSpec
from hfm.backbones.transforms import ImageTransform

# LayerNorm epsilon of MAE's ``fc_norm`` (``partial(nn.LayerNorm, eps=1e-6)`` in RETFound's models_vit.py).
FC_NORM_EPS = 1e-6
# Attention projection names across transformers versions (5: q_proj ...; 4 and its remote code: query ...).
_LORA_ALIASES: dict[str, tuple[str, ...]] = {
    "q_proj": ("query",),
    "k_proj": ("key",),
    "v_proj": ("value",),
    "query": ("q_proj",),
    "key": ("k_proj",),
    "value": ("v_proj",),
}


def _drop_final_norm(model: nn.Module, name: str) -> None:
    """Remove a timm ViT's final ``norm`` (MAE's ``global_pool`` deletes it: tokens stay pre-norm)."""
    norm = getattr(model, "norm", None)
    if not isinstance(norm, nn.Module):
        raise ValueError(f"backbone {name!r}: fc_norm pooling needs a model with a final 'norm' layer")
    model.norm = nn.Identity()


class Backbone(nn.Module):
    """A pretrained foundation model wrapped to one interface.

    ``backbone(images)`` returns the pooled embedding ``[B, spec.embed_dim]`` exactly as the spec says;
    ``backbone.tokens(images)`` returns the final (normalised) token sequence ``[B, T, width]`` including the
    class and register tokens (for ``spec.fc_norm`` entries the last block's output: MAE-style pooling removes
    the final norm and normalises the pooled vector instead); ``backbone.transform`` turns one PIL image or array into the normalised tensor.

    Attributes:
        model: The library's own module (a timm ``VisionTransformer``, a transformers ``Dinov2Model``, an
            open_clip visual tower). Tuners reach into it (LoRA targets, VPT blocks).
        spec: The backbone spec.
        family: ``timm``, ``transformers`` or ``open_clip``: how tokens are read from ``model``.
        revision: The commit actually loaded (``None`` only for plain local folders).
        is_twin: Whether this is a tiny random-weight twin.
        source_path: The local snapshot folder the weights came from.
        width: Width of one token of ``tokens()`` (differs from ``embed_dim`` for ``cls+mean`` and for a
            projected ``pooler`` embedding such as CLIP's).
    """

    def __init__(
        self,
        model: nn.Module,
        spec: BackboneSpec,
        *,
        family: str,
        revision: str | None = None,
        is_twin: bool = False,
        source_path: Path | None = None,
        token_width: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.family = family
        self.revision = revision
        self.is_twin = is_twin
        self.source_path = source_path
        self._token_width = token_width
        self.transform = ImageTransform.from_spec(spec)
        if spec.fc_norm:
            _drop_final_norm(model, spec.name)

    # -- token access -------------------------------------------------------------------------------------
    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The final token sequence ``[B, T, width]`` (prefix tokens first)."""
        model: Any = self.model
        if self.family == "timm":
            out = model.forward_features(images)
        elif self.family == "transformers":
            out = model(pixel_values=images).last_hidden_state
        elif self.family == "open_clip":
            trunk = getattr(self.model, "trunk", None)
            if trunk is None or not hasattr(trunk, "forward_features"):
                raise NotImplementedError(
                    f"backbone {self.spec.name!r}: token access needs an open_clip tower with a timm trunk"
                )
            out = trunk.forward_features(images)
        else:  # pragma: no cover - guarded at construction by the loaders
            raise ValueError(f"unknown backbone family {self.family!r}")
        if out.ndim == 4:  # convolutional feature map [B, C, H, W] -> tokens
            out = out.flatten(2).transpose(1, 2)
        return out

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pool a token sequence as the spec says (``cls``, ``mean``, ``cls+mean``)."""
        n_prefix = self.spec.num_prefix_tokens
        pooling = self.spec.pooling
        if pooling == "cls":
            return tokens[:, 0]
        patches = tokens[:, n_prefix:]
        if pooling == "mean":
            pooled = patches.mean(dim=1)
            if self.spec.fc_norm:  # MAE's fresh fc_norm: LayerNorm with identity affine
                pooled = F.layer_norm(pooled, pooled.shape[-1:], eps=FC_NORM_EPS)
            return pooled
        if pooling == "cls+mean":
            return torch.cat([tokens[:, 0], patches.mean(dim=1)], dim=-1)
        raise ValueError(f"pooling {pooling!r} is not computed from tokens; call the backbone instead")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled embeddings ``[B, spec.embed_dim]``."""
        if self.spec.pooling == "pooler":
            return self._pooler(images)
        return self.pool(self.tokens(images))

    def _pooler(self, images: torch.Tensor) -> torch.Tensor:
        if self.family == "transformers":
            out = self.model(pixel_values=images)
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise ValueError(
                    f"backbone {self.spec.name!r} has no pooler output; use pooling 'cls' or 'mean'"
                )
            return pooled
        if self.family == "open_clip":
            return self.model(images)
        if self.family == "timm":
            model: Any = self.model
            return model.forward_head(model.forward_features(images), pre_logits=True)
        raise ValueError(f"unknown backbone family {self.family!r}")

    # -- facts --------------------------------------------------------------------------------------------
    @property
    def lora_targets(self) -> str | list[str]:
        """The spec's LoRA targets as this loaded model names them.

        Attention projections are ``q_proj``/``k_proj``/``v_proj`` in transformers 5 but ``query``/``key``/
        ``value`` in transformers 4 and in remote code written for it (Hibou): a listed name the model lacks is
        replaced by its alias when the model has that instead.
        """
        targets = self.spec.lora_targets
        if isinstance(targets, str):
            return targets
        leaves = {name.rsplit(".", 1)[-1] for name, _ in self.model.named_modules()}
        resolved = []
        for target in targets:
            alias = next((a for a in _LORA_ALIASES.get(target, ()) if a in leaves), None)
            resolved.append(alias if target not in leaves and alias else target)
        return resolved

    @property
    def embed_dim(self) -> int:
        return self.spec.embed_dim

    @property
    def width(self) -> int:
        """Width of one token (as measured on load; else ``embed_dim``, halved for ``cls+mean``)."""
        if self._token_width is not None:
            return self._token_width
        return self.spec.embed_dim // 2 if self.spec.pooling == "cls+mean" else self.spec.embed_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def mark_pristine(self) -> None:
        """Record that the weights are exactly those of :attr:`revision` (the loader calls this last)."""
        self._pristine_versions: list[int] | None = [p._version for p in self.parameters()]

    def weights_pristine(self) -> bool:
        """Whether no parameter changed in place since :meth:`mark_pristine` (torch's per-tensor version
        counters, which every optimizer step and ``load_state_dict`` bump); ``False`` if never marked."""
        pristine = getattr(self, "_pristine_versions", None)
        return pristine is not None and pristine == [p._version for p in self.parameters()]

    def describe(self) -> dict[str, Any]:
        """What to record about this backbone in run folders and adapters."""
        return {
            "spec": self.spec.to_dict(),
            "resolved_revision": self.revision,
            "twin": self.is_twin,
        }
