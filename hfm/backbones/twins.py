"""Tiny random-weight twins of catalog backbones, written to disk in Hugging Face Hub cache layout.

A twin has the same library, model class, special kwargs (``init_values``, ``mlp_layer``, register tokens,
``dynamic_img_size`` ...), pooling and token layout as its real model, scaled down to width <= 64, depth <= 2
and a 32-64 px input. It is written as ``models--ORG--NAME/snapshots/<commit>/`` with ``refs/main`` under
``$HFM_CACHE/twins`` and then loaded through the same resolve-snapshot-then-build path as the real model, so
tests and offline demos exercise the real loading code. Twins are deterministic: the weights come from a seed
derived from the spec, and the fake commit hash from the twin's recipe.

``spec.twin`` holds per-entry overrides merged over the per-family defaults below.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hfm._fs import corrupt_weight_file, describe_storage, ensure_dir, storage_cause
from hfm.backbones.loaders.common import json_kwargs, resolve_kwargs
from hfm.backbones.spec import BackboneSpec
from hfm.env import hfm_cache_dir
from hfm.errors import BackboneLoadError, StorageError

TWIN_FORMAT = 3
TIMM_DEFAULTS: dict[str, Any] = {"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 32, "patch_size": 8}
TRANSFORMERS_DEFAULTS: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "image_size": 32,
    "patch_size": 8,
}
# SAM's image encoder: windowed attention with one global block and a small neck.
SAM_VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "mlp_dim": 128,
    "image_size": 64,
    "patch_size": 8,
    "output_channels": 32,
    "window_size": 4,
    "global_attn_indexes": [1],
}
# open_clip: flat keys shrink the timm trunk; ``proj_dim`` is the projected CLIP embedding size.
OPEN_CLIP_DEFAULTS: dict[str, Any] = {**TIMM_DEFAULTS, "proj_dim": 32}


def twin_cache_dir() -> Path:
    """Where twins live: ``$HFM_CACHE/twins`` (read at call time), default ``~/.cache/hfm/twins``."""
    return hfm_cache_dir("twins")


def twin_overrides(spec: BackboneSpec) -> dict[str, Any]:
    """The family defaults with the entry's ``spec.twin`` merged over them."""
    if spec.loader == "timm":
        return {**TIMM_DEFAULTS, **spec.twin}
    if spec.loader == "open_clip":
        return {**OPEN_CLIP_DEFAULTS, **spec.twin}
    if spec.architecture == "sam":
        vision = {**SAM_VISION_DEFAULTS, **spec.twin.get("vision_config", {})}
        flat = {k: v for k, v in spec.twin.items() if k != "vision_config"}
        vision.update(flat)
        return {"vision_config": vision}
    return {**TRANSFORMERS_DEFAULTS, **spec.twin}


def twin_commit(spec: BackboneSpec, repo_id: str | None = None) -> str:
    """A deterministic fake 40-hex commit naming this twin's recipe."""
    recipe = {
        "format": TWIN_FORMAT,
        "repo_id": repo_id or spec.hub_id,
        "loader": spec.loader,
        "architecture": spec.architecture,
        "loader_kwargs": json_kwargs(dict(spec.loader_kwargs)),
        "num_prefix_tokens": spec.num_prefix_tokens,
        "pooling": spec.pooling,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "twin": twin_overrides(spec),
    }
    if spec.text_tower:  # only vision-language twins carry a text tower (other twins keep their commit)
        from hfm.zeroshot.twins import TEXT_TWIN_BERT, TEXT_TWIN_FORMAT

        recipe["text_tower"] = {**spec.text_tower, "bert": TEXT_TWIN_BERT, "format": TEXT_TWIN_FORMAT}
    return hashlib.sha1(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()


def _seed(spec: BackboneSpec) -> int:
    return int(hashlib.sha256(spec.name.encode()).hexdigest()[:8], 16)


def twin_input_size(spec: BackboneSpec) -> int:
    """The twin's square input size."""
    over = twin_overrides(spec)
    if spec.loader in ("timm", "open_clip"):
        size = over.get("img_size", 32)
    elif "vision_config" in over:
        size = over["vision_config"]["image_size"]
    else:
        size = over.get("image_size", 32)
    return int(size if isinstance(size, int) else size[0])


def twin_spec(spec: BackboneSpec, width: int) -> BackboneSpec:
    """The entry's spec with the twin's embedding size and input size."""
    if spec.pooling == "pooler" and spec.loader == "open_clip":
        embed = int(twin_overrides(spec)["proj_dim"])
    else:
        embed = 2 * width if spec.pooling == "cls+mean" else width
    return spec.replace(embed_dim=embed, input_size=twin_input_size(spec), params_m=None, revision=None)


def twin_args(spec: BackboneSpec, folder: Path) -> dict[str, Any]:
    """The architecture arguments the twin in ``folder`` was built with."""
    if spec.loader == "timm":
        return dict(json.loads((folder / "config.json").read_text()).get("model_args", {}))
    if spec.loader == "open_clip":
        from hfm.backbones.loaders.clip_loader import TRUNK_KWARGS_KEY, read_clip_config

        return dict(read_clip_config(folder)[0].get("vision_cfg", {}).get(TRUNK_KWARGS_KEY, {}))
    return twin_overrides(spec)


def twin_build_spec(spec: BackboneSpec, folder: Path) -> BackboneSpec:
    """The spec to build the twin with: loader kwargs that the twin shrinks take the twin's values.

    Catalog kwargs such as ``embed_dim=1536`` or ``img_size=224`` repeat the real repo's config and would
    otherwise override the twin's own config, exactly as they override the real one.
    """
    args = twin_args(spec, folder)
    kwargs = {key: args.get(key, value) for key, value in spec.loader_kwargs.items()}
    return spec.replace(loader_kwargs=kwargs)


# -- writing ---------------------------------------------------------------------------------------------
def write_twin(spec: BackboneSpec, cache_dir: Path | None = None, *, repo_id: str | None = None) -> Path:
    """Write the twin of ``spec`` into a Hub-layout cache (idempotent) and return its snapshot folder.

    Args:
        spec: The catalog entry to twin.
        cache_dir: A Hub-layout cache root (default :func:`twin_cache_dir`; tests also use ``HF_HUB_CACHE``).
        repo_id: Write under another repo id than ``spec.hub_id`` (e.g. to fake a cached Hub model).
    """
    repo = repo_id or spec.hub_id
    root = (cache_dir or twin_cache_dir()) / ("models--" + repo.replace("/", "--"))
    try:
        return _write_twin(spec, root, repo)
    except StorageError:
        raise
    except Exception as err:  # OSError, or safetensors' error wrapping one (a full disk mid-write)
        cause = storage_cause(err)
        if cause is None:
            raise  # not a storage problem: a bug, keep its traceback
        raise StorageError(
            f"cannot write the {spec.name} twin under {root}: {describe_storage(cause)}; free space or point "
            "HFM_CACHE at another folder"
        ) from None


def _write_twin(spec: BackboneSpec, root: Path, repo: str) -> Path:
    commit = twin_commit(spec, repo)
    snapshot = root / "snapshots" / commit
    if (snapshot / ".hfm_twin_complete").is_file() and corrupt_weight_file(snapshot) is not None:
        shutil.rmtree(snapshot, ignore_errors=True)  # a damaged cached twin is rebuilt, never trusted
    if not (snapshot / ".hfm_twin_complete").is_file():
        ensure_dir(root / "snapshots", "twin cache folder (HFM_CACHE)")
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-twin-", dir=root))
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_seed(spec))
                _WRITERS[spec.loader](spec, tmp)
            (tmp / ".hfm_twin_complete").write_text(f"twin of {spec.name}\n")
            # Another process (a torchrun rank) may have finished the same twin meanwhile: keep it, never
            # delete a complete twin another process may be reading.
            if not (snapshot / ".hfm_twin_complete").is_file():
                if snapshot.exists():  # an incomplete earlier attempt
                    shutil.rmtree(snapshot)
                try:
                    os.replace(tmp, snapshot)
                except OSError:  # another process won the race with an identical twin
                    if not (snapshot / ".hfm_twin_complete").is_file():
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    refs = root / "refs"
    refs.mkdir(exist_ok=True)
    ref = refs / "main"
    if not ref.is_file() or ref.read_text().strip() != commit:
        ref.write_text(commit)
    return snapshot


def _even_mlp_ratio(kwargs: dict[str, Any], width: int) -> None:
    """Gated MLPs (SwiGLU) split the hidden layer in two halves: keep it even at the twin's width."""
    ratio = kwargs.get("mlp_ratio")
    if ratio is None:
        return
    hidden = int(width * float(ratio))
    if hidden % 2:
        kwargs["mlp_ratio"] = (hidden + 1) / width


def _timm_twin_model(spec: BackboneSpec, args: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Build the shrunken timm model and return it with the final (JSON-able) model args."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    args = dict(args)
    extra = resolve_kwargs(dict(spec.loader_kwargs))
    if "mlp_ratio" not in args and "mlp_ratio" in extra:
        args["mlp_ratio"] = extra.pop("mlp_ratio")
    _even_mlp_ratio(args, int(args.get("embed_dim", 64)))
    kwargs = {**extra, **args}
    kwargs.setdefault("num_classes", 0)
    try:
        model = timm.create_model(spec.architecture, pretrained=False, **kwargs)
    except AssertionError:
        # The architecture's own MLP ratio gives an odd gated (SwiGLU) hidden size at the twin's width.
        args["mlp_ratio"] = kwargs["mlp_ratio"] = 4.0
        model = timm.create_model(spec.architecture, pretrained=False, **kwargs)
    want_reg = spec.num_prefix_tokens - 1
    if (
        isinstance(model, VisionTransformer)
        and int(getattr(model, "num_prefix_tokens", 1)) != spec.num_prefix_tokens
        and "reg_tokens" not in kwargs
        and want_reg > 0
    ):
        # The real repo's config.json carries reg_tokens; the twin takes the layout from the spec.
        args["reg_tokens"] = want_reg
        model = timm.create_model(spec.architecture, pretrained=False, **{**kwargs, "reg_tokens": want_reg})
    return model, args


_LAYER_SCALE_NAMES = ("gamma", "gamma_1", "gamma_2", "lambda1", "lambda2", "layer_scale")


def spread_layer_scale(model: nn.Module) -> int:
    """Give LayerScale factors random values in [0.5, 1] and return how many tensors changed.

    Real models learn their LayerScale factors; a twin built with ``init_values=1e-5`` (UNI, H-optimus,
    Prov-GigaPath, DINOv3) would keep them near zero, so every block is almost the identity and all images get
    nearly the same embedding. A twin must give features a tuner can learn from.
    """
    changed = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in _LAYER_SCALE_NAMES or name.endswith(
                ("ls1.gamma", "ls2.gamma", "layer_scale1.lambda1", "layer_scale2.lambda1")
            ):
                param.uniform_(0.5, 1.0)
                changed += 1
    return changed


def spread_tiny_weights(model: nn.Module, std: float = 0.02) -> int:
    """Give weight matrices that the library initialises (near) zero a small random spread; return how many.

    transformers initialises SAM's neck convolutions at ~1e-10 and its position embeddings at zero, so a random
    SAM twin maps every image to the same all-but-zero feature map: nothing to learn from and nothing a test of
    its preprocessing could tell apart. Real models learn these weights.
    """
    changed = 0
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim >= 2 and float(param.abs().max()) < 1e-6:
                param.normal_(0.0, std)
                changed += 1
    return changed


def _save_timm(model: nn.Module, spec: BackboneSpec, folder: Path, args: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    spread_layer_scale(model)

    size = int(args.get("img_size", 32))
    config = {
        "architecture": spec.architecture,
        "num_classes": 0,
        "num_features": int(getattr(model, "num_features", args.get("embed_dim", 64))),
        "global_pool": str(getattr(model, "global_pool", "token")),
        # Like a Hub config, model_args hold every JSON-able argument the model was built with.
        "model_args": {**json_kwargs(dict(spec.loader_kwargs)), **json_kwargs(args)},
        "pretrained_cfg": {
            "input_size": [3, size, size],
            "mean": list(spec.mean),
            "std": list(spec.std),
            "interpolation": spec.interpolation,
            "crop_pct": spec.crop_pct,
            "num_classes": 0,
            "classifier": "head",
            "fixed_input_size": not bool(
                args.get("dynamic_img_size") or spec.loader_kwargs.get("dynamic_img_size")
            ),
        },
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))


def _write_timm(spec: BackboneSpec, folder: Path) -> None:
    model, args = _timm_twin_model(spec, twin_overrides(spec))
    _save_timm(model, spec, folder, args)


def _write_transformers(spec: BackboneSpec, folder: Path) -> None:
    import transformers

    over = twin_overrides(spec)
    if spec.architecture == "sam":
        config = transformers.AutoConfig.for_model(
            "sam",
            vision_config=over["vision_config"],
            prompt_encoder_config={"hidden_size": over["vision_config"]["output_channels"]},
            mask_decoder_config={
                "hidden_size": over["vision_config"]["output_channels"],
                "mlp_dim": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "iou_head_hidden_dim": 32,
            },
        )
        model: nn.Module = transformers.SamModel(config)  # type: ignore[arg-type]
        spread_tiny_weights(model)
        size = int(over["vision_config"]["image_size"])
    elif spec.text_tower.get("library") == "transformers":  # a whole SigLIP, as the real repo: both towers
        from hfm.zeroshot.twins import siglip_twin_model

        model = siglip_twin_model(over, folder)
        size = int(over.get("image_size", 32))
    else:
        try:
            config = transformers.AutoConfig.for_model(spec.architecture, **over)
        except ValueError as err:
            raise BackboneLoadError(
                f"{spec.name}: no transformers config class for {spec.architecture!r}"
            ) from err
        # Model-init kwargs (e.g. ``add_pooling_layer=False``) shape the twin's weights like the real ones.
        init_kwargs = {
            k: v for k, v in resolve_kwargs(dict(spec.loader_kwargs)).items() if not hasattr(config, k)
        }
        model = transformers.AutoModel.from_config(config, **init_kwargs)
        size = int(over.get("image_size", 32))
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # a "Writing model shards" bar for a 100 kB twin is noise
    try:
        model.save_pretrained(str(folder))  # type: ignore[operator]
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    preprocessor = {
        "do_resize": True,
        "size": {"height": size, "width": size},
        "do_center_crop": False,
        "do_normalize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "image_mean": list(spec.mean),
        "image_std": list(spec.std),
        "resample": {"nearest": 0, "bilinear": 2, "bicubic": 3}.get(spec.interpolation, 3),
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))


def _write_open_clip(spec: BackboneSpec, folder: Path) -> None:
    from open_clip.model import _build_vision_tower
    from safetensors.torch import save_file

    from hfm.backbones.loaders.clip_loader import TRUNK_KWARGS_KEY, _extra_timm_kwargs

    over = twin_overrides(spec)
    trunk_args = {k: v for k, v in over.items() if k not in ("proj_dim", "timm_pool", "timm_proj")}
    # Resolve register tokens and the MLP ratio exactly as for timm twins.
    _, trunk_args = _timm_twin_model(spec, trunk_args)
    trunk_args = json_kwargs(trunk_args)
    size = int(over.get("img_size", 32))
    vision_cfg = {
        "timm_model_name": spec.architecture,
        "timm_model_pretrained": False,
        "timm_pool": over.get("timm_pool", ""),
        "timm_proj": over.get("timm_proj", "linear"),
        "image_size": size,
        TRUNK_KWARGS_KEY: trunk_args,
    }
    model_cfg = {
        "embed_dim": int(over["proj_dim"]),
        "vision_cfg": vision_cfg,
        # A tiny built-in text tower: a twin never needs a tokenizer from the Hub.
        "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }
    plain_cfg = {k: v for k, v in vision_cfg.items() if k != TRUNK_KWARGS_KEY}
    with _extra_timm_kwargs(resolve_kwargs({**dict(spec.loader_kwargs), **trunk_args})):
        visual = _build_vision_tower(int(over["proj_dim"]), plain_cfg)
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {
            "mean": list(spec.mean),
            "std": list(spec.std),
            "interpolation": spec.interpolation,
        },
    }
    state = {f"visual.{k}": v.contiguous() for k, v in visual.state_dict().items()}
    if spec.text_tower:  # the entry's own text tower, shrunk; its text repo goes beside it in the cache
        from hfm.zeroshot.twins import open_clip_text_twin

        model_cfg["text_cfg"], text_state = open_clip_text_twin(
            dict(spec.text_tower), folder.parent.parent, int(over["proj_dim"])
        )
        state.update(text_state)
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file(state, str(folder / "open_clip_model.safetensors"))


_WRITERS = {"timm": _write_timm, "transformers": _write_transformers, "open_clip": _write_open_clip}
