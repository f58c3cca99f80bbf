"""Build the image tower of an open_clip model from a snapshot folder (``open_clip_config.json`` + weights).

Only the image tower is built and loaded: the text tower (and its tokenizer, which open_clip would fetch from
the Hub) is never touched, so an image backbone stays offline-safe. With ``allow_pickle=True`` and no
safetensors, ``open_clip_pytorch_model.bin`` is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from hfm.backbones.loaders.common import (
    is_pickled,
    load_pickled_state_dict,
    preferred_file,
    read_json,
    resolve_kwargs,
    weight_files,
)
from hfm.backbones.loaders.timm_loader import TIMM_LORA_TARGETS
from hfm.backbones.spec import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec
from hfm.errors import BackboneLoadError
from hfm.policy import LoadPolicy

# Extra keyword arguments for the timm trunk, stored in ``vision_cfg`` (twins use it to shrink the trunk;
# open_clip's own ``TimmModel`` has no way to pass them).
TRUNK_KWARGS_KEY = "hfm_trunk_kwargs"
_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "model.safetensors")
_PICKLE_NAMES = ("open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "pytorch_model.bin")


@contextlib.contextmanager
def _extra_timm_kwargs(extra: dict[str, Any]) -> Iterator[None]:
    """Pass extra kwargs to the ``timm.create_model`` call open_clip makes for its trunk."""
    import timm

    if not extra:
        yield
        return
    original = timm.create_model

    def create_model(*args: Any, **kwargs: Any) -> nn.Module:
        return original(*args, **{**kwargs, **extra})

    timm.create_model = create_model
    try:
        yield
    finally:
        timm.create_model = original


def read_clip_config(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model_cfg, preprocess_cfg)`` from ``open_clip_config.json``."""
    config = read_json(folder / "open_clip_config.json")
    return dict(config.get("model_cfg", config)), dict(config.get("preprocess_cfg", {}))


def _open_clip_model() -> Any:
    """``open_clip.model``: open_clip is an optional extra, so its absence is a one-line error naming it."""
    try:
        from open_clip import model
    except ImportError:
        raise BackboneLoadError(
            "open_clip models need the open_clip_torch package: pip install 'hfm-hub[clip]'"
        ) from None
    return model


def read_open_clip_state(folder: Path, label: str, policy: LoadPolicy = LoadPolicy()) -> dict[str, Any]:
    """Every tensor of an open_clip checkpoint (image tower, text tower, logit scale) from ``folder``.

    Pickled weights (one file, by open_clip's names) are read only when the policy allows them and the folder
    has no safetensors.
    """
    from safetensors.torch import load_file

    files = weight_files(folder, label, allow_pickle=policy.allow_pickle)
    preferred = [f for name in _WEIGHT_NAMES for f in files if f.name == name] or files
    state: dict[str, Any] = {}
    if is_pickled(files):
        state.update(load_pickled_state_dict(preferred_file(files, _PICKLE_NAMES), label))
    else:
        for file in preferred if len(preferred) == 1 else files:
            state.update(load_file(str(file)))
    return state


def build_open_clip(
    folder: Path, spec: BackboneSpec | None, *, label: str, policy: LoadPolicy = LoadPolicy()
) -> nn.Module:
    """The image tower (``model.visual``) with its weights; a timm trunk keeps token access.

    Pickled weights (one file, by open_clip's names) are read only when the policy allows them and the
    folder has no safetensors.
    """
    _build_vision_tower = _open_clip_model()._build_vision_tower
    model_cfg, _ = read_clip_config(folder)
    vision_cfg = dict(model_cfg.get("vision_cfg", {}))
    # The folder's own trunk kwargs (twins) win over the spec's, as a Hub config's model_args would.
    trunk_kwargs = resolve_kwargs(dict(spec.loader_kwargs) if spec else {})
    trunk_kwargs.update(resolve_kwargs(dict(vision_cfg.pop(TRUNK_KWARGS_KEY, None) or {})))
    try:
        with _extra_timm_kwargs(trunk_kwargs):
            visual = _build_vision_tower(
                int(model_cfg["embed_dim"]), vision_cfg, quick_gelu=bool(model_cfg.get("quick_gelu", False))
            )
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise BackboneLoadError(
            f"{label}: open_clip could not build the image tower from {folder}: {err}"
        ) from err
    state = read_open_clip_state(folder, label, policy)
    visual_state = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    if not visual_state:
        raise BackboneLoadError(f"{label}: the weights in {folder} hold no 'visual.*' image-tower tensors")
    missing, unexpected = visual.load_state_dict(visual_state, strict=False)
    if missing or unexpected:
        raise BackboneLoadError(
            f"{label}: image-tower weights do not match the config (missing {list(missing)[:3]}, "
            f"unexpected {list(unexpected)[:3]})"
        )
    return visual


def open_clip_width(model: nn.Module, pooling: str) -> int:
    """Embedding width: the projected CLIP embedding for ``pooler``, else the trunk's token width."""
    if pooling == "pooler":
        head = getattr(model, "head", None)
        proj = getattr(head, "proj", None) if head is not None else None
        if proj is not None:
            return int(proj.out_features)
        return int(getattr(model, "output_dim", 0))
    trunk = getattr(model, "trunk", None)
    return int(getattr(trunk, "num_features", 0)) if trunk is not None else 0


def open_clip_spec(model: nn.Module, folder: Path, *, name: str, hub_id: str) -> BackboneSpec:
    """A spec for an ad-hoc open_clip model: the projected image embedding, preprocessing from its config."""
    model_cfg, pre = read_clip_config(folder)
    vision_cfg = model_cfg.get("vision_cfg", {})
    size = vision_cfg.get("image_size", 224)
    trunk = getattr(model, "trunk", None)
    return BackboneSpec(
        name=name,
        hub_id=hub_id,
        loader="open_clip",
        architecture=str(vision_cfg.get("timm_model_name") or "open_clip"),
        input_size=int(size if isinstance(size, int) else size[0]),
        mean=tuple(pre.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
        std=tuple(pre.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
        interpolation=str(pre.get("interpolation", "bicubic")),
        pooling="pooler",
        num_prefix_tokens=int(getattr(trunk, "num_prefix_tokens", 1)) if trunk is not None else 1,
        embed_dim=int(model_cfg.get("embed_dim", 512)),
        lora_targets=TIMM_LORA_TARGETS,
        params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        source=hub_id,
    )
