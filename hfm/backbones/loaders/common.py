"""Helpers shared by the per-library loaders: dotted-path kwargs, safetensors checks, family detection."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from hfm.backbones.errors import BackboneLoadError

# Loader kwargs that name a class or function are written as dotted import paths in the catalog.
_DOTTED_PREFIXES = ("timm.", "torch.", "transformers.", "open_clip.", "hfm.")


def resolve_object(path: str) -> Any:
    """Import ``"package.module.Attribute"`` (e.g. ``"timm.layers.SwiGLUPacked"``) and return the attribute."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise BackboneLoadError(f"cannot import {path!r} named in the loader kwargs: {err}") from err


def resolve_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Loader kwargs with dotted-path strings (``"torch.nn.SiLU"``) replaced by the objects they name."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith(_DOTTED_PREFIXES) and "." in value.strip("."):
            out[key] = resolve_object(value)
        elif isinstance(value, dict):
            out[key] = resolve_kwargs(value)
        else:
            out[key] = value
    return out


def json_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable part of some kwargs (dotted-path strings stay strings)."""
    out = {}
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON config file, raising a one-line error when it is missing or broken."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BackboneLoadError(
            f"{path} is missing: the folder is not a timm, transformers or open_clip model"
        ) from err
    except json.JSONDecodeError as err:
        raise BackboneLoadError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise BackboneLoadError(f"{path} should hold a JSON object")
    return data


def safetensors_files(folder: Path, label: str) -> list[Path]:
    """The safetensors weight files in a snapshot; hfm never unpickles downloaded weights."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pth", ".pt", ".ckpt"))
        found = f" (found only {', '.join(pickles)})" if pickles else ""
        raise BackboneLoadError(
            f"{label}: no .safetensors weights in {folder}{found}; hfm never unpickles downloaded weights: pin a "
            "revision that has safetensors (e.g. the Hub's conversion PR, revision='refs/pr/N') or convert them "
            "yourself and load with 'local-dir:/path'"
        )
    return files


def detect_family(folder: Path) -> str:
    """Which library a model folder belongs to: ``open_clip``, ``timm`` or ``transformers``."""
    if (folder / "open_clip_config.json").is_file():
        return "open_clip"
    config = read_json(folder / "config.json")
    if "architecture" in config and "model_type" not in config:
        return "timm"
    if "model_type" in config:
        return "transformers"
    raise BackboneLoadError(
        f"cannot tell which library {folder} belongs to: config.json has neither 'architecture' (timm) nor "
        "'model_type' (transformers), and there is no open_clip_config.json"
    )


def first_lines(err: BaseException, limit: int = 240) -> str:
    """An exception's message squeezed onto one line (for one-line user errors)."""
    text = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    text = text or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
