"""A small procedural image-classification task for the offline quickstart and tests.

Each class is a shape or texture (a blob, stripes, a checkerboard, a ring, ...) drawn at a random
position and scale, at a random brightness and tint over a random background, with Gaussian noise.
Brightness and tint carry no class information, so a model has to see form. Image ``i`` of a split is drawn
from its own PCG64 generator seeded by ``(seed, split, i)``: the task is identical on every machine
and images are made on demand, so nothing is stored.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from hfm.data.partition import rng_for
from hfm.data.registry import Raw, SourceBlock, register_source
from hfm.data.splits import Subset

CLASS_NAMES = [
    "blob",
    "horizontal stripes",
    "checkerboard",
    "vertical stripes",
    "ring",
    "cross",
    "square",
    "diagonal stripes",
]


def render(label: int, rng: np.random.Generator, size: int, noise: float) -> np.ndarray:
    """One ``uint8`` RGB image ``[size, size, 3]`` of class ``label``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = (size / 2) + rng.uniform(-size / 8, size / 8, 2)
    radius = size * rng.uniform(0.22, 0.34)
    period = max(3.0, size * rng.uniform(0.14, 0.22))
    phase = rng.uniform(0, period)
    dy, dx = yy - cy, xx - cx
    inside = (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
    if label == 0:
        mask = np.exp(-(dy**2 + dx**2) / (2 * (radius * 0.6) ** 2))
    elif label == 1:
        mask = (((yy + phase) // (period / 2)) % 2 == 0) & inside
    elif label == 2:
        mask = ((((yy + phase) // (period / 2)) + ((xx + phase) // (period / 2))) % 2 == 0) & inside
    elif label == 3:
        mask = (((xx + phase) // (period / 2)) % 2 == 0) & inside
    elif label == 4:
        dist = np.sqrt(dy**2 + dx**2)
        mask = (dist <= radius) & (dist >= radius * 0.6)
    elif label == 5:
        arm = radius * 0.3
        mask = ((np.abs(dy) <= arm) | (np.abs(dx) <= arm)) & inside
    elif label == 6:
        mask = inside
    else:
        mask = (((xx + yy + phase) // (period / 2)) % 2 == 0) & inside
    mask = np.asarray(mask, dtype=np.float64)
    # Grey levels with a mild random tint: brightness and colour vary but carry no class information.
    tint = rng.uniform(0.85, 1.0, 3)
    background = rng.uniform(0.0, 0.3) * tint
    foreground = rng.uniform(0.65, 1.0) * tint
    image = background[None, None, :] + (foreground - background)[None, None, :] * mask[..., None]
    image = image + rng.normal(0.0, noise, image.shape)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


class SyntheticReader:
    """``reader(i)`` renders image ``i`` of one split (a class, so it pickles)."""

    def __init__(self, seed: int, split: str, labels: np.ndarray, size: int, noise: float) -> None:
        self.seed = seed
        self.split = split
        self.labels = labels
        self.size = size
        self.noise = noise

    def __call__(self, i: int) -> np.ndarray:
        rng = rng_for("synthetic", self.seed, self.split, i)
        return render(int(self.labels[i]), rng, self.size, self.noise)


@register_source("synthetic")
class SyntheticSource(SourceBlock):
    """A procedural task: classes differ in shape and texture, with noise; deterministic from ``seed``."""

    n_classes: int = Field(3, ge=2, le=8)
    n_per_class: int = Field(40, ge=1)
    n_val_per_class: int = Field(10, ge=1)
    n_test_per_class: int = Field(20, ge=1)
    size: int = Field(32, ge=16, le=512)
    seed: int = 0
    noise: float = Field(0.1, ge=0.0, le=1.0)

    def load(self) -> Raw:
        """Render the three splits (see :func:`load_synthetic`)."""
        return load_synthetic(self)


def load_synthetic(config: SyntheticSource) -> Raw:
    """Train / val / test with ``n_per_class`` / ``n_val_per_class`` / ``n_test_per_class`` images per class."""
    counts = {"train": config.n_per_class, "val": config.n_val_per_class, "test": config.n_test_per_class}
    parts: dict[str, Subset] = {}
    for split, per_class in counts.items():
        labels = np.tile(np.arange(config.n_classes, dtype=np.int64), per_class)
        parts[split] = Subset(
            ids=[f"{split}/{i}" for i in range(len(labels))],
            labels=labels,
            reader=SyntheticReader(config.seed, split, labels, config.size, config.noise),
        )
    classes = list(config.classes) if config.classes is not None else CLASS_NAMES[: config.n_classes]
    return Raw(parts=parts, classes=classes, where=f"synthetic (seed {config.seed})")
