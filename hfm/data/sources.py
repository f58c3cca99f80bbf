"""Typed source blocks: how a recipe says where its images and labels come from.

Each block is a pydantic model that rejects unknown keys; :data:`SourceConfig` is their union,
discriminated on ``type``, so a recipe model can embed it as one field. :func:`parse_source` turns a
plain dict (from YAML) into the right block with a one-line :class:`~hfm.errors.ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from hfm.errors import ConfigError


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


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on_error: Literal["raise", "skip"] = "raise"
    """What to do with a corrupt or truncated image: stop naming the file, or skip it and report the count."""
    split: AutoSplit = AutoSplit(seed=0, val=0.15, test=0.2)
    """Used only for splits the source does not provide."""
    classes: list[str] | None = None
    """Class names in label order. Optional: otherwise from the source (folder names, ClassLabel, ...)."""


class NpzSource(_Source):
    """MedMNIST-layout ``.npz``: ``{split}_images`` and ``{split}_labels`` (labels ``(N,)`` or ``(N, 1)``).

    Either a local ``path`` or a MedMNIST ``name`` (+ ``size``) downloaded from the official record with
    its checksum verified. ``group_key`` names per-split group arrays (``{split}_{group_key}``, e.g. BCCD's
    ``source_image``); a ``classes`` array inside the file names the classes.
    """

    type: Literal["npz"] = "npz"
    path: Path | None = None
    name: str | None = None
    size: Literal[28, 64, 128, 224] = 28
    group_key: str | None = None

    @model_validator(mode="after")
    def _path_or_name(self) -> NpzSource:
        if (self.path is None) == (self.name is None):
            raise ValueError("give exactly one of 'path' (a local .npz) or 'name' (a MedMNIST dataset)")
        return self


class FolderSource(_Source):
    """One sub-folder per class under ``root``; any PNG, JPEG, TIFF or BMP image inside (recursively).

    Optional ``train``/``val``/``test`` top-level folders each holding the class folders give fixed splits.
    """

    type: Literal["folder"] = "folder"
    root: Path
    extensions: list[str] = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"]


class CsvSource(_Source):
    """A CSV manifest: one row per image, paths relative to the CSV's folder (or to ``root``)."""

    type: Literal["csv"] = "csv"
    path: Path
    root: Path | None = None
    path_column: str = "path"
    label_column: str = "label"
    group_column: str | None = None
    split_column: str | None = None


class HfSource(_Source):
    """A Hugging Face dataset: a Hub ``id`` (network, via :mod:`hfm.hub.data_fetch`) or a local ``path``
    (a ``save_to_disk`` folder, or parquet files named ``train-*.parquet`` / ``test-*.parquet`` ...)."""

    type: Literal["hf"] = "hf"
    id: str | None = None
    path: Path | None = None
    config: str | None = None
    revision: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = None
    val_split: str | None = None
    """Name of the validation split when it is not ``validation``/``val``/``valid``."""

    @model_validator(mode="after")
    def _id_or_path(self) -> HfSource:
        if (self.id is None) == (self.path is None):
            raise ValueError("give exactly one of 'id' (a Hub dataset) or 'path' (a local dataset folder)")
        return self


class DicomSource(_Source):
    """DICOM files (needs ``pydicom``: ``pip install hfm-hub[dicom]``): class folders under ``root`` or a
    CSV manifest ``csv`` (columns as for the ``csv`` source). Only pixel data leaves the loader."""

    type: Literal["dicom"] = "dicom"
    root: Path | None = None
    csv: Path | None = None
    path_column: str = "path"
    label_column: str = "label"
    group_column: str | None = None
    split_column: str | None = None
    window: Literal["auto", "none"] = "auto"
    """``auto`` applies the file's window centre/width when present; ``none`` scales by min/max."""

    @model_validator(mode="after")
    def _root_or_csv(self) -> DicomSource:
        if (self.root is None) == (self.csv is None):
            raise ValueError("give exactly one of 'root' (class folders) or 'csv' (a manifest)")
        return self


class SyntheticSource(_Source):
    """A procedural task: classes differ in shape and texture, with noise; deterministic from ``seed``."""

    type: Literal["synthetic"] = "synthetic"
    n_classes: int = Field(3, ge=2, le=8)
    n_per_class: int = Field(40, ge=1)
    n_val_per_class: int = Field(10, ge=1)
    n_test_per_class: int = Field(20, ge=1)
    size: int = Field(32, ge=16, le=512)
    seed: int = 0
    noise: float = Field(0.1, ge=0.0, le=1.0)


SourceConfig = Annotated[
    NpzSource | FolderSource | CsvSource | HfSource | DicomSource | SyntheticSource,
    Field(discriminator="type"),
]
"""Any source block; recipes embed this as their ``data`` field."""

_ADAPTER: TypeAdapter[Any] = TypeAdapter(SourceConfig)


def parse_source(source: Any, *, where: str = "data") -> Any:
    """Validate a dict (or pass through a source block); errors name the field, e.g. ``data.path``."""
    if isinstance(source, _Source):
        return source
    if not isinstance(source, dict):
        raise ConfigError(f"{where}: expected a source block with a 'type', got {type(source).__name__}")
    try:
        return _ADAPTER.validate_python(source)
    except ValidationError as err:
        first = err.errors()[0]
        parts = list(first["loc"])
        if parts and parts[0] in _TYPE_TAGS:
            parts = parts[1:]
        loc = ".".join(str(part) for part in parts)
        field = f"{where}.{loc}" if loc else where
        types = ", ".join(sorted(_TYPE_TAGS))
        msg = first["msg"]
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            msg = f"'type' must be one of {types}"
        elif first["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against the source type's fields)"
        raise ConfigError(f"{field}: {msg}") from None


_TYPE_TAGS = {"npz", "folder", "csv", "hf", "dicom", "synthetic"}
