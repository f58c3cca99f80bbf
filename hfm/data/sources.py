"""The built-in data sources, in one place: importing this module registers them all.

Each source is a typed block (a pydantic model that rejects unknown keys) with its loader, in its own
module; :mod:`hfm.data.registry` holds the open registry and :func:`parse_source`, which turns a plain dict
(from YAML) into the right block with a one-line :class:`~hfm.errors.ConfigError`.
"""

from __future__ import annotations

from hfm.data.files import CsvSource, DicomSource, FolderSource
from hfm.data.hf import HfSource
from hfm.data.npz import NpzSource
from hfm.data.registry import AutoSplit, SourceBlock, parse_source
from hfm.data.synthetic import SyntheticSource
from hfm.data.unlabelled import ImagesSource

__all__ = [
    "AutoSplit",
    "CsvSource",
    "DicomSource",
    "FolderSource",
    "HfSource",
    "ImagesSource",
    "NpzSource",
    "SourceBlock",
    "SyntheticSource",
    "parse_source",
]
