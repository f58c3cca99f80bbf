"""Build a transformers vision model from a snapshot folder (``config.json`` + safetensors weights).

With ``allow_pickle=True`` and no safetensors, transformers reads ``pytorch_model.bin`` itself through its
``use_safetensors=False`` path with ``weights_only=True`` (``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from torch import nn

from hfm.backbones.loaders.common import (
    first_lines,
    is_pickled,
    pickle_refused,
    read_json,
    resolve_kwargs,
    weight_files,
)
from hfm.backbones.spec import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec
from hfm.errors import BackboneLoadError, RemoteCodeError
from hfm.policy import LoadPolicy

# Multimodal model types whose image encoder is a separate class: load only that tower.
VISION_TOWERS: dict[str, str] = {
    "sam": "SamVisionModel",
    "clip": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
}
# PIL resample codes used in preprocessor_config.json.
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def build_transformers(
    folder: Path,
    spec: BackboneSpec | None,
    *,
    label: str,
    policy: LoadPolicy = LoadPolicy(),
) -> nn.Module:
    """Load the model with its config class (or the image tower of a multimodal model) from safetensors.

    A config with ``auto_map`` runs code from the repository, so it needs the policy's ``trust_remote_code``. A
    folder without safetensors is read from ``pytorch_model.bin`` only with the policy's ``allow_pickle``,
    restricted to tensors (``weights_only=True``).
    """
    import transformers

    pickled = is_pickled(weight_files(folder, label, allow_pickle=policy.allow_pickle))
    raw = read_json(folder / "config.json")
    if raw.get("auto_map") and not policy.trust_remote_code:
        raise RemoteCodeError(
            f"{label} runs code from its Hub repository (config.json has auto_map): if you trust it, pass "
            "trust_remote_code=True (CLI: --trust-remote-code)"
        )
    kwargs: dict[str, Any] = resolve_kwargs(dict(spec.loader_kwargs) if spec else {})
    tower = VISION_TOWERS.get(str(raw.get("model_type")))
    model_cls = getattr(transformers, tower) if tower and not raw.get("auto_map") else transformers.AutoModel
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # hfm checks missing weights itself (below), in one line
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise here
    try:
        model, info = model_cls.from_pretrained(
            str(folder),
            use_safetensors=not pickled,
            weights_only=True,
            trust_remote_code=policy.trust_remote_code,
            output_loading_info=True,
            **kwargs,
        )
    except pickle.UnpicklingError as err:
        raise pickle_refused(label, f"the pickled weights in {folder}", err) from err
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        first = first_lines(err)
        raise BackboneLoadError(f"{label}: transformers could not load {folder}: {first}") from err
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
    # An unused pooler is harmless unless the spec pools with it; any other missing weight is a real mismatch.
    uses_pooler = spec is not None and spec.pooling == "pooler"
    missing = [k for k in info.get("missing_keys", []) if uses_pooler or "pooler" not in k]
    if missing:
        raise BackboneLoadError(
            f"{label}: {len(missing)} weights are missing from {folder} (e.g. {sorted(missing)[:3]}): the files do "
            "not match the model the config describes"
        )
    return model


def _vision_config(model: nn.Module) -> Any:
    config = model.config  # type: ignore[union-attr]
    return getattr(config, "vision_config", None) or config


def transformers_width(model: nn.Module) -> int:
    """Width of one output token (SAM: channels of the neck's feature map)."""
    config = _vision_config(model)
    if getattr(config, "model_type", "") in ("sam_vision_model",) or hasattr(config, "output_channels"):
        return int(config.output_channels)
    return int(config.hidden_size)


def transformers_prefix_tokens(model: nn.Module) -> int:
    """Class + register tokens at the start of ``last_hidden_state``, counted from the embedding parameters.

    ViT/DINOv2 have a ``cls_token``, DINOv2-with-registers adds ``register_tokens``; SigLIP and SAM have none.
    """
    count = 0
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "cls_token" and "embeddings" in name:
            count += 1
        elif leaf == "register_tokens" and "embeddings" in name:
            count += int(param.shape[-2]) if param.ndim >= 2 else 1
    return count


def preprocessing_from_folder(folder: Path) -> dict[str, Any]:
    """Input size, mean/std, interpolation and crop from ``preprocessor_config.json`` (empty when absent)."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return {}
    cfg = read_json(path)
    out: dict[str, Any] = {}
    if cfg.get("image_mean") is not None:
        out["mean"] = tuple(float(v) for v in _three(cfg["image_mean"]))
    if cfg.get("image_std") is not None:
        out["std"] = tuple(float(v) for v in _three(cfg["image_std"]))
    if "resample" in cfg:
        out["interpolation"] = _RESAMPLE.get(int(cfg["resample"]), "bicubic")
    resize = _edge(cfg.get("size"))
    crop = _edge(cfg.get("crop_size")) if cfg.get("do_center_crop") else None
    if crop:
        out["input_size"] = crop
        if resize and resize > crop:
            out["crop_pct"] = round(crop / resize, 4)
    elif resize:
        out["input_size"] = resize
    return out


def _three(values: Any) -> list[float]:
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    return values * 3 if len(values) == 1 else values


def _edge(size: Any) -> int | None:
    if isinstance(size, int):
        return size
    if isinstance(size, dict):
        for key in ("shortest_edge", "height", "longest_edge"):
            if size.get(key):
                return int(size[key])
    return None


def transformers_spec(model: nn.Module, folder: Path, *, name: str, hub_id: str) -> BackboneSpec:
    """A spec for an ad-hoc transformers model: preprocessing from its folder, ``cls`` pooling when it has one."""
    config = _vision_config(model)
    prefix = transformers_prefix_tokens(model)
    pre = preprocessing_from_folder(folder)
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = ("q_proj", "k_proj", "v_proj") if "q_proj" in names else ("query", "key", "value")
    return BackboneSpec(
        name=name,
        hub_id=hub_id,
        loader="transformers",
        architecture=str(model.config.model_type),  # type: ignore[union-attr]
        input_size=int(pre.get("input_size", getattr(config, "image_size", 224))),
        mean=pre.get("mean", IMAGENET_MEAN),
        std=pre.get("std", IMAGENET_STD),
        interpolation=pre.get("interpolation", "bicubic"),
        crop_pct=pre.get("crop_pct", 1.0),
        pooling="cls" if prefix else "mean",
        num_prefix_tokens=prefix,
        embed_dim=transformers_width(model),
        lora_targets=targets,
        params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        source=hub_id,
    )
