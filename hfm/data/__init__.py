"""Data: sources to train / val / test splits, few-shot episodes, and torch datasets.

``load_data(source)`` reads any source block (npz, folder, csv, hf, dicom, synthetic, or one registered
with :func:`register_source`) into :class:`Splits`; ``episode(train, k, seed)`` draws an exact, nested,
leak-free k-shot episode.
"""

from __future__ import annotations

from hfm.data.augment import Augment, AugmentConfig
from hfm.data.dataset import ImageDataset
from hfm.data.episodes import Episode, episode
from hfm.data.load import load_data
from hfm.data.registry import Raw, SourceBlock, list_sources, parse_source, register_source
from hfm.data.splits import Splits, Subset

__all__ = [
    "Augment",
    "AugmentConfig",
    "Episode",
    "ImageDataset",
    "Raw",
    "SourceBlock",
    "Splits",
    "Subset",
    "episode",
    "list_sources",
    "load_data",
    "parse_source",
    "register_source",
]
