"""Unlabelled images from a separate source: the ``unlabelled:`` block of a recipe.

Semi-supervised methods learn from the draw's pool (train minus the labelled examples minus held-out groups). A
recipe may add the images of another source to it::

    unlabelled:
      data: {type: images, root: /data/more-ultrasound}   # any registered source block
      max_images: 2000                                     # a cap, sampled with each run's seed

The separate source's images join the draw's pool (they are *added*, never replace it: the draw's pool costs
nothing and only holds images of the labelled source's own classes). Every image goes through the backbone's
preprocessing like the labelled ones; no label of the separate source is ever read by a method. ``type:
images`` reads a plain folder of images with no class folders; a labelled source (class folders, npz, csv)
works too, and then every class it has images of must be a class of the labelled data.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hfm.data.files import _build, _files, _rel
from hfm.data.images import IMAGE_EXTENSIONS, open_image
from hfm.data.partition import rng_for
from hfm.data.registry import Raw, SourceBlock, parse_source, register_source
from hfm.data.splits import Subset, concat
from hfm.errors import DataError

#: The label of an image whose class is unknown (every image of a separate unlabelled source).
UNKNOWN = -1


@register_source("images")
class ImagesSource(SourceBlock):
    """A plain folder of images (recursively), no class folders and no labels: unlabelled images only.

    Use it in a recipe's ``unlabelled:`` block; as the labelled ``data:`` it fails (it has no classes).
    """

    root: Path
    extensions: list[str] = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"]

    def load(self) -> Raw:
        """Every image file under ``root``, each decoded once (corrupt files: ``on_error``), label unknown."""
        root = Path(self.root).expanduser()
        where = str(self.root)
        if not root.is_dir():
            raise DataError(f"{where}: folder not found (check 'root')")
        exts = tuple(e.lower() for e in self.extensions) or IMAGE_EXTENSIONS
        relpaths = [_rel(f, root) for f in _files(root, exts)]
        if not relpaths:
            raise DataError(f"{where}: no images ({', '.join(exts)}) in the folder or below it")
        n = len(relpaths)
        return _build(root, where, relpaths, [UNKNOWN] * n, None, ["all"] * n, [], self.on_error, open_image)


def ids_fingerprint(ids: Sequence[str]) -> str:
    """A short hash of example ids in order: two pools are the same exactly when these match."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


@dataclasses.dataclass
class UnlabelledSource:
    """A separate source of unlabelled images, loaded once per sweep.

    Attributes:
        images: Every image of the source (labels :data:`UNKNOWN`; ids prefixed ``unlabelled/``).
        source: The source block as JSON (recorded in the run).
        max_images: The cap per run (``None``: every image).
    """

    images: Subset
    source: dict[str, Any]
    max_images: int | None = None

    def positions(self, seed: int) -> np.ndarray:
        """The images one run uses (ascending): all of them, or ``max_images`` sampled with the run's seed."""
        n = len(self.images)
        if self.max_images is None or self.max_images >= n:
            return np.arange(n, dtype=np.int64)
        fingerprint = ids_fingerprint(self.images.ids)
        picked = rng_for("unlabelled", fingerprint, seed).choice(n, size=self.max_images, replace=False)
        return np.sort(picked).astype(np.int64)

    def record(self, seed: int) -> dict[str, Any]:
        """Size and fingerprint of one run's share, with the source block and the cap."""
        ids = [self.images.ids[int(i)] for i in self.positions(seed)]
        return {
            "size": len(ids),
            "fingerprint": ids_fingerprint(ids),
            "available": len(self.images),
            "max_images": self.max_images,
            "type": self.source.get("type"),
        }


def load_unlabelled(block: Any, classes: Sequence[str], max_images: int | None = None) -> UnlabelledSource:
    """Load the separate unlabelled source of a recipe and check it against the labelled classes.

    Args:
        block: A source block (dict or :class:`~hfm.data.registry.SourceBlock`).
        classes: The labelled data's class names.
        max_images: The cap per run.

    Raises:
        ConfigError: The block is invalid.
        DataError: The source has no images, or images of a class the labelled data does not have.
    """
    config = parse_source(block, where="unlabelled.data")
    raw = config.load()
    parts = [p for p in raw.parts.values() if len(p)]
    if not parts:
        raise DataError(f"{raw.where}: the unlabelled source has no images; point unlabelled.data at some")
    everything = concat(parts)
    present = sorted({int(x) for x in everything.labels.tolist() if x != UNKNOWN})
    names = [raw.classes[i] if 0 <= i < len(raw.classes) else str(i) for i in present]
    foreign = [n for n in names if n not in set(classes)]
    if foreign:
        raise DataError(
            f"unlabelled source has images of classes {', '.join(foreign)} not in the labelled data "
            f"({', '.join(classes)}); remove those images or use a source of the same classes"
        )
    images = Subset(
        ids=[f"unlabelled/{i}" for i in everything.ids],
        labels=np.full(len(everything), UNKNOWN, dtype=np.int64),  # never read: the pool is unlabelled
        reader=everything.reader,
    )
    return UnlabelledSource(images, config.model_dump(mode="json", exclude_none=True), max_images)


__all__ = ["UNKNOWN", "ImagesSource", "UnlabelledSource", "ids_fingerprint", "load_unlabelled"]
