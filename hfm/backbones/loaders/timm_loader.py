"""Build a timm model from a snapshot folder (``config.json`` + ``model.safetensors``), as ``hf-hub:`` does.

With ``allow_pickle=True`` and no safetensors, ``pytorch_model.bin`` (or ``.pth``) is read by hfm with
``torch.load(weights_only=True)`` and handed to timm's own ``load_pretrained``, so the architecture's checkpoint
filter (key renames, position-embedding resizing) and the classifier handling are exactly timm's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from torch import nn

from hfm.backbones.loaders.common import (
    first_lines,
    is_pickled,
    load_pickled_state_dict,
    preferred_file,
    read_json,
    resolve_kwargs,
    weight_files,
)
from hfm.backbones.spec import BackboneSpec
from hfm.errors import BackboneLoadError
from hfm.policy import LoadPolicy

# Attention projections inside timm transformer blocks (ViT: qkv/proj; Eva: qkv or q/k/v_proj, proj).
TIMM_LORA_TARGETS = r".*blocks\.\d+\.attn\.(qkv|q_proj|k_proj|v_proj|proj)"
# Pickled weight names in timm's order of preference (timm.models._hub).
TIMM_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.pth", "model.pth")


def build_timm(
    folder: Path, spec: BackboneSpec | None, *, label: str, policy: LoadPolicy = LoadPolicy()
) -> nn.Module:
    """Create the model from the folder's ``config.json`` plus the spec's loader kwargs and load its weights.

    The folder's ``model_args`` are defaults; the spec's ``loader_kwargs`` (``init_values``, ``mlp_layer``,
    ``reg_tokens`` ...) override them, exactly like ``timm.create_model("hf-hub:...", **kwargs)``. The
    classifier head is dropped (``num_classes=0``) unless the kwargs say otherwise. Pickled weights are read
    only when the policy allows them and the folder has no safetensors.
    """
    import timm

    weights = weight_files(folder, label, allow_pickle=policy.allow_pickle)
    pickled = is_pickled(weights)
    kwargs: dict[str, Any] = resolve_kwargs(dict(spec.loader_kwargs) if spec else {})
    kwargs.setdefault("num_classes", 0)
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    try:
        if "architecture" in config:
            model = timm.create_model(f"local-dir:{folder}", pretrained=not pickled, **kwargs)
        elif spec is None:
            raise BackboneLoadError(f"{label}: {folder} has no timm config.json with an 'architecture'")
        elif pickled:
            model = timm.create_model(spec.architecture, pretrained=False, **kwargs)
        else:
            file = preferred_file(weights, ("model.safetensors",))
            model = timm.create_model(
                spec.architecture, pretrained=True, pretrained_cfg_overlay={"file": str(file)}, **kwargs
            )
        if pickled:
            file = preferred_file(weights, TIMM_PICKLE_NAMES)
            _load_state_dict(model, load_pickled_state_dict(file, label), in_chans=kwargs.get("in_chans", 3))
        return model
    except BackboneLoadError:
        raise
    except (RuntimeError, ValueError, TypeError, KeyError) as err:
        first = first_lines(err)
        raise BackboneLoadError(f"{label}: timm could not build the model from {folder}: {first}") from err


def _load_state_dict(model: nn.Module, state: dict[str, Any], *, in_chans: int) -> None:
    """Load an in-memory state dict the way ``timm.create_model(..., pretrained=True)`` loads a file.

    timm's ``load_pretrained`` applies the architecture's ``checkpoint_filter_fn`` (the filter timm's model
    builders pass), adapts the input conv and drops a classifier the model does not have, then loads strictly.
    """
    from timm.models import load_pretrained

    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    # Point timm at the in-memory dict only (no file, URL or Hub id): it is loaded, never copied or kept.
    cfg.update(source="", file=None, url=None, hf_hub_id=None, hf_hub_filename=None, state_dict=state)
    load_pretrained(
        model,
        pretrained_cfg=cfg,
        num_classes=int(getattr(model, "num_classes", 0)),
        in_chans=in_chans,
        filter_fn=filter_fn if callable(filter_fn) else None,
        strict=True,
    )


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
