"""Build a timm model from a snapshot folder (``config.json`` + ``model.safetensors``), as ``hf-hub:`` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from hfm.backbones.errors import BackboneLoadError
from hfm.backbones.loaders.common import first_lines, read_json, resolve_kwargs, safetensors_files
from hfm.backbones.spec import BackboneSpec

# Attention projections inside timm transformer blocks (ViT: qkv/proj; Eva: qkv or q/k/v_proj, proj).
TIMM_LORA_TARGETS = r".*blocks\.\d+\.attn\.(qkv|q_proj|k_proj|v_proj|proj)"


def build_timm(folder: Path, spec: BackboneSpec | None, *, label: str) -> nn.Module:
    """Create the model from the folder's ``config.json`` plus the spec's loader kwargs and load its weights.

    The folder's ``model_args`` are defaults; the spec's ``loader_kwargs`` (``init_values``, ``mlp_layer``,
    ``reg_tokens`` ...) override them, exactly like ``timm.create_model("hf-hub:...", **kwargs)``. The
    classifier head is dropped (``num_classes=0``) unless the kwargs say otherwise.
    """
    import timm

    weights = safetensors_files(folder, label)
    kwargs: dict[str, Any] = resolve_kwargs(dict(spec.loader_kwargs) if spec else {})
    kwargs.setdefault("num_classes", 0)
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    try:
        if "architecture" in config:
            return timm.create_model(f"local-dir:{folder}", pretrained=True, **kwargs)
        if spec is None:
            raise BackboneLoadError(f"{label}: {folder} has no timm config.json with an 'architecture'")
        preferred = [w for w in weights if w.name == "model.safetensors"] or weights
        return timm.create_model(
            spec.architecture, pretrained=True, pretrained_cfg_overlay={"file": str(preferred[0])}, **kwargs
        )
    except BackboneLoadError:
        raise
    except (RuntimeError, ValueError, TypeError, KeyError) as err:
        first = first_lines(err)
        raise BackboneLoadError(f"{label}: timm could not build the model from {folder}: {first}") from err


def timm_width(model: nn.Module) -> int:
    """Width of one output token."""
    return int(getattr(model, "num_features", 0) or getattr(model, "embed_dim", 0))


def timm_prefix_tokens(model: nn.Module) -> int:
    """Class + register tokens the model prepends."""
    return int(getattr(model, "num_prefix_tokens", 1 if getattr(model, "cls_token", None) is not None else 0))


def timm_spec(model: nn.Module, *, name: str, hub_id: str) -> BackboneSpec:
    """A spec for an ad-hoc timm model, with preprocessing from its ``pretrained_cfg``."""
    cfg: dict[str, Any] = dict(getattr(model, "pretrained_cfg", {}) or {})
    prefix = timm_prefix_tokens(model)
    global_pool = getattr(model, "global_pool", "token")
    pooling = "mean" if global_pool in ("avg", "avgmax", "max") or prefix == 0 else "cls"
    width = timm_width(model)
    input_size = cfg.get("input_size", (3, 224, 224))
    return BackboneSpec(
        name=name,
        hub_id=hub_id,
        loader="timm",
        architecture=str(cfg.get("architecture") or type(model).__name__),
        input_size=int(input_size[-1]),
        mean=tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
        interpolation=str(cfg.get("interpolation", "bicubic")),
        crop_pct=float(cfg.get("crop_pct", 1.0) or 1.0),
        pooling=pooling,  # type: ignore[arg-type]
        num_prefix_tokens=prefix,
        embed_dim=width,
        lora_targets=TIMM_LORA_TARGETS,
        params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        source=hub_id,
    )
