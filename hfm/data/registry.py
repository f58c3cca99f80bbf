"""The data-source contract and its open registry: a typed block in, a :class:`Raw` out.

A source is one :class:`SourceBlock` subclass (a pydantic model that rejects unknown keys) with a ``load``
method, registered under the ``type`` a recipe's ``data`` block names. Code outside hfm adds sources with
the same decorator the built-in ones use::

    @register_source("my-archive")
    class MyArchive(SourceBlock):
        path: Path  # fields typed ``Path`` are resolved against the recipe file's folder

        def load(self) -> Raw:
            ...

The built-in sources (npz, folder, csv, dicom, hf, synthetic) live in their own modules and are imported
on first registry access; this module imports none of them, so they can all import it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hfm._registry import Registry
from hfm.data.splits import Subset
from hfm.errors import ConfigError

# Built-in source types, all registered by importing hfm.data.sources.
_BUILTINS = {name: "sources" for name in ("npz", "folder", "csv", "hf", "dicom", "synthetic", "images")}
_SOURCES: Registry[type[SourceBlock]] = Registry(
    "data source", "hfm.data", _BUILTINS, ConfigError, "source_type"
)
"""Importing this module registers every built-in source."""


@dataclass
class Raw:
    """What a source's ``load`` hands back before splits are completed.

    Attributes:
        parts: Subsets by name: any of ``train``, ``val``, ``test``, or only ``all``.
        classes: Class names in label order.
        where: The file or folder to name in error messages (relative or as the user wrote it).
        info: Extra facts for ``split_info`` (e.g. how many corrupt files were skipped).
    """

    parts: dict[str, Subset]
    classes: list[str]
    where: str
    info: dict[str, Any] = field(default_factory=dict)


class AutoSplit(BaseModel):
    """How to make val/test when the source has none: stratified by label, group-aware, from a seed.

    Missing splits are carved out of ``train`` (or out of everything when a source has no splits at
    all). Whole groups move together, so no patient straddles two splits.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    val: float = Field(0.15, ge=0.0, lt=1.0)
    test: float = Field(0.2, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fractions(self) -> AutoSplit:
        if self.val + self.test >= 1.0:
            raise ValueError(f"split fractions val={self.val} + test={self.test} leave nothing for train")
        return self


class SourceBlock(BaseModel):
    """Base of every source block: the fields all sources share, and the ``load`` every source implements.

    ``type`` is filled in from the registered name when omitted, so ``MySource(path=...)`` works in code.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_type: ClassVar[str] = ""
    """The registered name (set by :func:`register_source`)."""

    on_error: Literal["raise", "skip"] = "raise"
    """What to do with a corrupt or truncated image: stop naming the file, or skip it and report the count."""
    split: AutoSplit = AutoSplit(seed=0, val=0.15, test=0.2)
    """Used only for splits the source does not provide."""
    classes: list[str] | None = None
    """Class names in label order. Optional: otherwise from the source (folder names, ClassLabel, ...)."""
    type: str = ""
    """The registered name; filled in when omitted."""

    @model_validator(mode="before")
    @classmethod
    def _fill_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" not in data and cls.source_type:
            return {**data, "type": cls.source_type}
        return data

    @model_validator(mode="after")
    def _type_is_this_source(self) -> SourceBlock:
        if self.type != type(self).source_type:
            raise ValueError(f"type {self.type!r} does not match this block ({type(self).source_type!r})")
        return self

    def load(self) -> Raw:
        """Read the images and labels; raise :class:`~hfm.errors.DataError` naming the file and field."""
        raise NotImplementedError(
            f"source {self.type!r} does not implement load()"
        )  # refused at registration

    @classmethod
    def path_fields(cls) -> list[str]:
        """Fields holding local paths (annotated ``Path``): a recipe resolves them against its folder."""
        return [name for name, info in cls.model_fields.items() if _mentions_path(info.annotation)]


def _mentions_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_mentions_path(arg) for arg in typing.get_args(annotation))
    return False


S = TypeVar("S", bound=type[SourceBlock])


def register_source(name: str) -> Callable[[S], S]:
    """Class decorator: register a :class:`SourceBlock` subclass as data ``type`` ``name``.

    Raises:
        ValueError: When ``name`` is already taken by another class (a programming error, not a user one).
        TypeError: When the class does not implement ``load``.
    """

    def check(cls: S) -> None:
        if cls.load is SourceBlock.load:
            raise TypeError(f"data source {name!r} ({cls.__qualname__}) must implement load() -> Raw")

    return _SOURCES.register(name, check)  # type: ignore[arg-type,return-value]


def list_sources() -> list[str]:
    """Registered source types, sorted."""
    return _SOURCES.names()


def get_source(name: str) -> type[SourceBlock]:
    """The block class registered as ``name``.

    Raises:
        ConfigError: For an unknown name (the message lists the known ones).
    """
    return _SOURCES.get(name, "unknown {kind} {name!r}: 'type' must be one of {known}")


def parse_source(source: Any, *, where: str = "data") -> SourceBlock:
    """Validate a dict (or pass through a source block); errors name the field, e.g. ``data.path``."""
    if isinstance(source, SourceBlock):
        return source
    if not isinstance(source, dict):
        raise ConfigError(f"{where}: expected a source block with a 'type', got {type(source).__name__}")
    kind = source.get("type")
    _SOURCES.load_builtins()
    if not isinstance(kind, str) or kind not in _SOURCES.classes:
        raise ConfigError(f"{where}.type: 'type' must be one of {', '.join(list_sources())}")
    try:
        return _SOURCES.classes[kind].model_validate(source)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        name = f"{where}.{loc}" if loc else where
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = f"unknown key; allowed keys: {', '.join(_SOURCES.classes[kind].model_fields)}"
        raise ConfigError(f"{name}: {msg}") from None
