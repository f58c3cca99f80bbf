"""Write a pretrained backbone folder in its library's own layout plus hfm's spec, atomically.

timm: ``model.safetensors`` + ``config.json`` (``architecture``, ``model_args``, ``pretrained_cfg`` with the
input size, mean and std), as timm's ``local-dir:`` and ``hf-hub:`` loaders read it. transformers:
``save_pretrained`` plus the preprocessor config. Next to it ``hfm_spec.json`` holds the backbone spec
(pooling, prefix tokens, loader kwargs, LoRA targets), which :func:`hfm.load_backbone` prefers over guessing
from the files, so the exported backbone embeds exactly as the one that was trained.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from hfm.backbones.loaders import SPEC_FILE
from hfm.backbones.loaders.common import json_kwargs
from hfm.backbones.spec import BackboneSpec
from hfm.pretrain.config import PretrainError

PRETRAIN_FILE = "hfm_pretrain.json"


def check_output(out: Path) -> None:
    """Refuse to overwrite a non-empty folder that is not a pretrained backbone."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SPEC_FILE).is_file())):
        raise PretrainError(
            f"output {out} exists and is not a pretrained backbone folder: choose another output"
        )


def _timm_config(model: nn.Module, spec: BackboneSpec, model_args: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(getattr(model, "pretrained_cfg", None) or {})
    keep = {k: v for k, v in cfg.items() if k in ("interpolation", "crop_mode", "first_conv", "classifier")}
    return {
        "architecture": spec.architecture,
        "num_classes": 0,
        "num_features": int(getattr(model, "num_features", spec.embed_dim)),
        "global_pool": str(getattr(model, "global_pool", "")),
        "model_args": json_kwargs(model_args),
        "pretrained_cfg": {
            **json_kwargs(keep),
            "input_size": [3, spec.input_size, spec.input_size],
            "mean": list(spec.mean),
            "std": list(spec.std),
            "interpolation": spec.interpolation,
            "crop_pct": spec.crop_pct,
            "num_classes": 0,
            # timm passes img_size to models with a fixed input size only (ViTs; not CNNs).
            "fixed_input_size": bool(cfg.get("fixed_input_size", False))
            and not bool(model_args.get("dynamic_img_size")),
        },
    }


def _write_timm(folder: Path, model: nn.Module, spec: BackboneSpec, model_args: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(_timm_config(model, spec, model_args), indent=2) + "\n")


def _write_transformers(folder: Path, model: nn.Module, source: Path | None) -> None:
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # a "Writing model shards" bar for one small file is noise
    try:
        model.save_pretrained(str(folder))  # type: ignore[operator]
    finally:
        if bars:
            logging.enable_progress_bar()
    if source is not None and (source / "preprocessor_config.json").is_file():
        shutil.copy2(source / "preprocessor_config.json", folder / "preprocessor_config.json")


def write_backbone(
    out: Path,
    model: nn.Module,
    spec: BackboneSpec,
    *,
    family: str,
    model_args: dict[str, Any],
    source: Path | None,
    facts: dict[str, Any],
    extras: Callable[[Path], None] | None = None,
) -> Path:
    """Write the folder in a staging directory, then move it into place (nothing half-written is left).

    Args:
        out: The backbone folder.
        model: The library model (LoRA already merged).
        spec: The spec the exported backbone loads with.
        family: ``timm`` or ``transformers``.
        model_args: The timm architecture arguments (from the source ``config.json`` or the recipe).
        source: The folder the starting weights came from (for the transformers preprocessor config).
        facts: What the pretraining did (``hfm_pretrain.json``).
        extras: Writes the card and plots into the staging folder.
    """
    check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if family == "timm":
            _write_timm(stage, model, spec, model_args)
        elif family == "transformers":
            _write_transformers(stage, model, source)
        else:  # pragma: no cover - refused before training
            raise PretrainError(f"cannot export a {family} backbone")
        (stage / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, default=str) + "\n")
        (stage / PRETRAIN_FILE).write_text(json.dumps(facts, indent=2, default=str) + "\n")
        if extras is not None:
            extras(stage)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def read_spec(folder: Path) -> BackboneSpec | None:
    """The spec a pretrained backbone folder carries, or ``None`` for any other folder."""
    path = folder / SPEC_FILE
    if not path.is_file():
        return None
    return BackboneSpec.from_dict(json.loads(path.read_text(encoding="utf-8")))
