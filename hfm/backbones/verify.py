"""Compare a downloaded model's own Hub configs with its catalog entry, fact by fact.

The catalog records what the publishers' code does; the Hub repository carries configs of its own (timm's
``config.json`` with ``pretrained_cfg`` and ``model_args``, transformers' ``config.json`` and
``preprocessor_config.json``, open_clip's ``open_clip_config.json``). Where the two disagree, either the entry is
wrong or it deliberately follows the publishers' code over the config (MedSAM's processor config says ImageNet
mean/std, its inference script scales each image to [0, 1]): a disagreement is *explained* when the entry's
``provenance`` names a source for that fact, else *unexplained*, and those are the ones to look into. Reads
only the local Hugging Face cache (``hfm backbones download NAME`` fills it on a connected machine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfm.backbones.loaders.common import json_kwargs, read_json
from hfm.backbones.spec import BackboneSpec

# Entry architectures that name a built-in class for a model whose config names another (vision tower of a
# multimodal model, remote code with the same layout): not a disagreement.
_SAME_ARCHITECTURE = {
    ("siglip_vision_model", "siglip"),
    ("dinov2_with_registers", "dinov2"),
}


# A source cited for one of a pair of facts covers the other (mean/std come from one Normalize call).
_ALIAS = {"std": "mean", "mean": "std"}


@dataclass(frozen=True)
class Disagreement:
    """One fact on which a Hub config and the catalog entry differ.

    Attributes:
        fact: The spec field (``mean``, ``interpolation``, ``architecture``, ``loader_kwargs.reg_tokens`` ...).
        entry: The entry's value.
        hub: The value in the Hub config.
        config: Which config file (and key) the Hub value comes from.
        provenance: The entry's source for this fact, if it cites one (then the difference is deliberate).
    """

    fact: str
    entry: Any
    hub: Any
    config: str
    provenance: str | None = None

    @property
    def explained(self) -> bool:
        return self.provenance is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fact": self.fact,
            "entry": self.entry,
            "hub": self.hub,
            "config": self.config,
            "provenance": self.provenance,
            "explained": self.explained,
        }


def verify_folder(spec: BackboneSpec, folder: Path) -> list[Disagreement]:
    """Every disagreement between the configs in a downloaded snapshot ``folder`` and ``spec``."""
    facts: list[tuple[str, Any, Any, str]] = []
    if spec.loader == "timm":
        facts += _timm_facts(spec, folder)
    elif spec.loader == "transformers":
        facts += _transformers_facts(spec, folder)
    else:
        facts += _open_clip_facts(spec, folder)
    out = []
    for fact, entry, hub, config in facts:
        if hub is None or _same(entry, hub):
            continue
        field = fact.split(".", 1)[0]
        source = (
            spec.provenance.get(fact)
            or spec.provenance.get(field)
            or spec.provenance.get(_ALIAS.get(field, ""))
        )
        out.append(Disagreement(fact, entry, hub, config, source))
    return out


def _same(entry: Any, hub: Any) -> bool:
    if isinstance(entry, (list, tuple)) and isinstance(hub, (list, tuple)):
        return len(entry) == len(hub) and all(_same(a, b) for a, b in zip(entry, hub, strict=True))
    if isinstance(entry, (int, float)) and isinstance(hub, (int, float)) and not isinstance(entry, bool):
        return math.isclose(float(entry), float(hub), rel_tol=1e-4, abs_tol=1e-6)
    return bool(entry == hub)


def _preprocessing(
    spec: BackboneSpec, values: dict[str, Any], config: str
) -> list[tuple[str, Any, Any, str]]:
    """Facts shared by every library's preprocessing config (missing keys are not compared)."""
    rows: list[tuple[str, Any, Any, str]] = []
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct"):
        if key in values:
            rows.append((key, getattr(spec, key), values[key], config))
    return rows


def _timm_facts(spec: BackboneSpec, folder: Path) -> list[tuple[str, Any, Any, str]]:
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    pre = dict(config.get("pretrained_cfg") or {})
    values: dict[str, Any] = {}
    if pre.get("input_size"):
        values["input_size"] = int(pre["input_size"][-1])
    for key in ("mean", "std"):
        if pre.get(key) is not None:
            values[key] = tuple(float(v) for v in pre[key])
    if pre.get("interpolation"):
        values["interpolation"] = str(pre["interpolation"])
    if pre.get("crop_pct") is not None:
        values["crop_pct"] = float(pre["crop_pct"])
    rows = _preprocessing(spec, values, "config.json pretrained_cfg")
    if config.get("architecture"):
        rows.append(("architecture", spec.architecture, config["architecture"], "config.json architecture"))
    model_args = json_kwargs(dict(config.get("model_args") or {}))
    for key, value in sorted(spec.loader_kwargs.items()):
        if key in model_args and isinstance(value, (int, float, str, bool)):
            rows.append((f"loader_kwargs.{key}", value, model_args[key], "config.json model_args"))
    return rows


def _transformers_facts(spec: BackboneSpec, folder: Path) -> list[tuple[str, Any, Any, str]]:
    from hfm.backbones.loaders.hf_loader import preprocessing_from_folder

    rows = _preprocessing(spec, preprocessing_from_folder(folder), "preprocessor_config.json")
    path = folder / "preprocessor_config.json"
    size = read_json(path).get("size") if path.is_file() else None
    if isinstance(size, dict) and {"height", "width"} <= set(size):
        rows.append(("resize_mode", spec.resize_mode, "squash", "preprocessor_config.json size"))
    elif isinstance(size, dict) and "shortest_edge" in size:
        rows.append(("resize_mode", spec.resize_mode, "shortest", "preprocessor_config.json size"))
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    model_type = config.get("model_type")
    if model_type and (spec.architecture, model_type) not in _SAME_ARCHITECTURE:
        rows.append(("architecture", spec.architecture, model_type, "config.json model_type"))
    return rows


def _open_clip_facts(spec: BackboneSpec, folder: Path) -> list[tuple[str, Any, Any, str]]:
    from hfm.backbones.loaders.clip_loader import read_clip_config

    model_cfg, pre = read_clip_config(folder)
    vision = dict(model_cfg.get("vision_cfg") or {})
    values: dict[str, Any] = {}
    for key in ("mean", "std"):
        if pre.get(key) is not None:
            values[key] = tuple(float(v) for v in pre[key])
    if pre.get("interpolation"):
        values["interpolation"] = str(pre["interpolation"])
    size = vision.get("image_size")
    if size is not None:
        values["input_size"] = int(size if isinstance(size, int) else size[0])
    rows = _preprocessing(spec, values, "open_clip_config.json")
    if vision.get("timm_model_name"):
        rows.append(
            ("architecture", spec.architecture, vision["timm_model_name"], "open_clip_config.json vision_cfg")
        )
    if spec.pooling == "pooler" and model_cfg.get("embed_dim") is not None:
        rows.append(
            ("embed_dim", spec.embed_dim, int(model_cfg["embed_dim"]), "open_clip_config.json embed_dim")
        )
    return rows


def verify_backbone(name: str) -> tuple[BackboneSpec, str | None, list[Disagreement]]:
    """Find a catalog entry's snapshot in the local Hugging Face cache and compare its configs with the entry.

    Raises:
        BackboneNotFoundError: ``name`` is not a catalog entry.
        BackboneNotCachedError: The model's configs are not in the cache (the message says how to fetch them).
    """
    from hfm.backbones.names import resolve_name
    from hfm.errors import BackboneNotFoundError
    from hfm.hub.download import resolve_snapshot
    from hfm.policy import LoadPolicy

    spec = resolve_name(name)[0]
    if spec is None:
        raise BackboneNotFoundError(
            f"{name!r} is not a catalog entry: `hfm backbones verify` checks catalog entries"
        )
    snapshot = resolve_snapshot(
        spec.hub_id, policy=LoadPolicy(revision=spec.revision), local_files_only=True, name=spec.name
    )
    return spec, snapshot.commit, verify_folder(spec, snapshot.path)


def format_report(spec: BackboneSpec, commit: str | None, found: list[Disagreement]) -> str:
    """A short plain-text report: one line per disagreement, explained ones with their source."""
    head = f"{spec.name} ({spec.hub_id} @ {commit or 'local'}):"
    if not found:
        return f"{head} the Hub configs agree with the entry"
    lines = [f"{head} {len(found)} disagreement(s)"]
    for item in found:
        mark = "explained" if item.explained else "UNEXPLAINED"
        lines.append(f"  {item.fact}: entry {item.entry!r}, {item.config} {item.hub!r} [{mark}]")
        if item.provenance:
            lines.append(f"      entry follows: {item.provenance}")
    return "\n".join(lines)
