"""Tiny twin backbones of every family the tuners support, and a learnable toy subset.

Twins come from ``hfm.load_backbone(name, twin=True)``: deterministic random weights written in Hub layout,
so loading the same name twice gives the same model, exactly as ``hfm.load_adapter`` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import hfm
from hfm.backbones.base import Backbone
from hfm.data.splits import Subset
from hfm.tuners import builtin_tuners

#: One twin per family: timm ViT, timm ViT with registers (cls+mean), transformers DINOv2, transformers ViT.
FAMILIES = {
    "timm-vit": "pathology/uni",
    "timm-vit-reg": "pathology/virchow2",
    "hf-dinov2": "radiology/rad-dino",
    "hf-vit": "pathology/phikon",
}
# Tuners that adapt an image backbone; `mil` (bag aggregators, tests/mil) and `text-probe` (heads from a text
# tower, tests/zeroshot) read other inputs and have their own suites.
TUNERS = tuple(t for t in builtin_tuners() if t not in ("mil", "text-probe"))


def twin(family_or_name: str) -> Backbone:
    """A fresh twin backbone by family key (``timm-vit``) or catalog name."""
    return hfm.load_backbone(FAMILIES.get(family_or_name, family_or_name), twin=True)


def toy_subset(n_per_class: int = 4, num_classes: int = 3, size: int = 32, seed: int = 0) -> Subset:
    """Images whose class is their dominant colour channel, with noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    images = rng.integers(0, 90, size=(len(labels), size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, :, :, label % 3] += 150
    return Subset(ids=[f"toy/{i}" for i in range(len(labels))], labels=labels, reader=lambda i: images[i])


@pytest.fixture
def make_twin() -> Callable[[str], Backbone]:
    return twin


@pytest.fixture
def toy() -> Subset:
    return toy_subset()
