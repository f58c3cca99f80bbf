"""Class prompts of a recipe: per class a list of descriptions, or templates x class names, or a prompt file.

A recipe's ``prompts`` block::

    prompts:
      templates: ["a breast ultrasound image of a {} lesion", "an ultrasound scan showing a {} breast mass"]
      names: {malignant: [malignant, cancerous]}      # optional; default: the class name itself
      descriptions:                                   # optional full sentences per class
        normal: ["a breast ultrasound image with no lesion"]
      file: prompts.yaml                              # optional; the same keys, inline ones win

Each class gets its descriptions followed by every template filled with each of its names. A class that ends
up with no prompt is a one-line error, so is a template without exactly one ``{}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hfm.errors import ConfigError


class PromptsBlock(BaseModel):
    """The recipe's ``prompts`` block.

    Attributes:
        templates: Sentences with one ``{}`` that a class name fills.
        names: Class -> name(s) filled into the templates (default: the class name).
        descriptions: Class -> full descriptions, used as they are.
        file: A YAML or JSON file with the same keys (relative to the recipe); inline keys win.
    """

    model_config = ConfigDict(extra="forbid")

    templates: list[str] = Field(default_factory=list)
    names: dict[str, list[str]] = Field(default_factory=dict)
    descriptions: dict[str, list[str]] = Field(default_factory=dict)
    file: str | None = None

    @field_validator("names", "descriptions", mode="before")
    @classmethod
    def _one_string(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("templates")
    @classmethod
    def _one_slot(cls, value: list[str]) -> list[str]:
        for template in value:
            if template.count("{}") != 1:
                raise ValueError(f"template {template!r} needs exactly one '{{}}' for the class name")
        return value


def resolve_file(block: PromptsBlock, base_dir: Path, source: str) -> PromptsBlock:
    """Merge the block's prompt file (relative to ``base_dir``) under its inline keys; the file path is kept."""
    if block.file is None:
        return block
    path = Path(block.file).expanduser()
    path = path if path.is_absolute() else (base_dir / path)
    if not path.is_file():
        raise ConfigError(f"{source}: prompts.file: {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: prompts.file: {path} is not valid YAML/JSON: {err}") from None
    if not isinstance(data, dict) or "file" in data:
        raise ConfigError(f"{source}: prompts.file: {path} must map templates/names/descriptions (no 'file')")
    inline = block.model_dump(exclude_unset=True, exclude={"file"})
    try:
        merged = PromptsBlock.model_validate({**data, **inline, "file": str(path.resolve())})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{source}: prompts.file {path}: {where}: {first['msg']}") from None
    return merged


def class_prompts(block: PromptsBlock, classes: Sequence[str]) -> dict[str, list[str]]:
    """Each class's prompts, in the data's class order.

    Raises:
        ConfigError: A class has no prompt, or the block names a class the data does not have.
    """
    unknown = sorted((set(block.names) | set(block.descriptions)) - set(classes))
    if unknown:
        raise ConfigError(
            f"prompts name class(es) {unknown} that the data does not have (classes: {list(classes)})"
        )
    out: dict[str, list[str]] = {}
    for name in classes:
        prompts = list(block.descriptions.get(name, []))
        fillers = block.names.get(name, [name])
        prompts += [t.replace("{}", f) for t in block.templates for f in fillers]
        prompts = [p.strip() for p in prompts]
        if not prompts or not all(prompts):
            raise ConfigError(
                f"class {name!r} has no prompt: add prompts.descriptions.{name} or prompts.templates"
            )
        out[name] = prompts
    return out


def fingerprint(prompts: dict[str, list[str]]) -> str:
    """A short hash of the classes and their prompts, in order (what a zero-shot head was built from)."""
    text = json.dumps([[c, p] for c, p in prompts.items()], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
