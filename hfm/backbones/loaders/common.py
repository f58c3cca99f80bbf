"""Helpers shared by the per-library loaders: dotted-path kwargs, weight files, family detection.

Weights are read as safetensors. Pickled weights (``pytorch_model.bin`` ...) are read only when the user passes
``allow_pickle=True`` and no safetensors exist, and then only through PyTorch's restricted unpickler
(``torch.load(..., weights_only=True)``), which rebuilds tensors and plain containers and refuses any other object.
"""

from __future__ import annotations

import importlib
import json
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfm._fs import corrupt_weight_file
from hfm.errors import BackboneLoadError

if TYPE_CHECKING:
    import torch

# Loader kwargs that name a class or function are written as dotted import paths in the catalog.
_DOTTED_PREFIXES = ("timm.", "torch.", "transformers.", "open_clip.", "hfm.")
PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt")
# Checkpoints often nest the weights; like timm's ``load_state_dict``, EMA weights win when present.
# DINOv2 training checkpoints (RETFound-DINOv2) keep the encoder under "teacher".
_NESTED_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "teacher")
# Wrappers (DistributedDataParallel, torch.compile, DINOv2's "backbone") prefix every key.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "backbone.")
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


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


def weight_files(folder: Path, label: str, *, allow_pickle: bool = False) -> list[Path]:
    """The weight files to read: the safetensors when there are any, else (opt-in) the pickled ones.

    Args:
        folder: A model folder (Hub snapshot or local directory).
        label: The model's name, for error messages.
        allow_pickle: Fall back to pickled files (``.bin``/``.pth``/...) when no safetensors exist.

    Raises:
        BackboneLoadError: No usable weights; the message names ``allow_pickle`` and the other fixes.
    """
    files = sorted(folder.glob("*.safetensors"))
    if files:
        broken = corrupt_weight_file(folder)
        if broken is not None and broken.parent == folder:
            raise BackboneLoadError(
                f"{label}: weight file {broken} is truncated or corrupt: delete it and download it again "
                f"(`hf download {label} --force-download` for a Hub model) or replace it"
            )
        return files  # safetensors always win, whatever allow_pickle says
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if allow_pickle:
        if pickles:
            return pickles
        raise BackboneLoadError(
            f"{label}: no weights in {folder} (neither .safetensors nor pickled .bin/.pth files): for a Hub "
            f"model, fetch them with `hfm backbones download {label} --allow-pickle` (or load online)"
        )
    found = f" (found only {', '.join(p.name for p in pickles)})" if pickles else ""
    raise BackboneLoadError(
        f"{label}: no .safetensors weights in {folder}{found}; hfm unpickles weights only when asked: pass "
        "allow_pickle=True (CLI: --allow-pickle; the file is read with torch.load(weights_only=True), which "
        "refuses arbitrary objects), or pin a revision that has safetensors (e.g. the Hub's conversion PR, "
        "revision='refs/pr/N')"
    )


def is_pickled(files: list[Path]) -> bool:
    """Whether :func:`weight_files` fell back to pickled files."""
    return bool(files) and files[0].suffix != ".safetensors"


def preferred_file(files: list[Path], names: tuple[str, ...]) -> Path:
    """The first of ``names`` present among ``files``, else the first file."""
    by_name = {f.name: f for f in files}
    return next((by_name[n] for n in names if n in by_name), files[0])


def pickle_refused(label: str, what: str, err: BaseException) -> BackboneLoadError:
    """The one-line error for a pickle that ``weights_only=True`` refused (it holds more than tensors)."""
    match = _UNSAFE_GLOBAL.search(str(err))
    names = f" (it references {match.group(1)})" if match else ""
    return BackboneLoadError(
        f"{label}: {what} holds objects other than tensors{names}, which torch.load(weights_only=True) refuses "
        "to unpickle; hfm never "
        "runs arbitrary pickles: pin a revision that has safetensors, or convert the weights on a machine "
        "you trust and load them with 'local-dir:/path'"
    )


def load_pickled_state_dict(path: Path, label: str) -> dict[str, torch.Tensor]:
    """Read a pickled checkpoint with PyTorch's restricted unpickler and return its tensors.

    The file is read only with ``torch.load(path, map_location="cpu", weights_only=True)``. Nested checkpoints
    (``{"model": ...}``, ``{"state_dict": ...}``, EMA first) are unwrapped and wrapper prefixes (``module.``,
    ``_orig_mod.``) stripped, as timm's ``load_state_dict`` does; non-tensor entries are dropped.

    Raises:
        BackboneLoadError: The file holds objects the restricted unpickler refuses, is unreadable, or holds
            no tensors.
    """
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise pickle_refused(label, path.name, err) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise BackboneLoadError(
            f"{label}: cannot read {path} as PyTorch weights: {first_lines(err)}"
        ) from err
    if isinstance(obj, dict):
        nested = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), dict)), None)
        obj = nested if nested is not None else obj
    if not isinstance(obj, dict):
        raise BackboneLoadError(f"{label}: {path.name} holds a {type(obj).__name__}, not a dict of weights")
    tensors = {_strip_wrappers(str(k)): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise BackboneLoadError(f"{label}: {path.name} holds no tensors (keys {sorted(map(str, obj))[:3]})")
    return tensors


def _strip_wrappers(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


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
