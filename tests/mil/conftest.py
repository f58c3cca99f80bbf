"""Bag data for the MIL tests: a tiny npz whose groups are bags (labels shared within a bag)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_bag_npz(
    path: Path, bags_per_class: dict[str, int], *, size: int = 16, mixed_bag: bool = False, seed: int = 0
) -> Path:
    """An npz with ``{split}_bag`` groups: each bag holds 2-5 images of its class (class 1 is brighter).

    ``mixed_bag`` makes the first train bag hold one image of the other class (disagreeing labels).
    """
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {"classes": np.array(["negative", "positive"])}
    for split, n_bags in bags_per_class.items():
        images, labels, groups = [], [], []
        for b in range(2 * n_bags):
            label = b % 2
            for _ in range(int(rng.integers(2, 6))):
                images.append(rng.integers(0, 120, (size, size)) + 100 * label)
                labels.append(label)
                groups.append(f"{split}-bag{b:02d}")
        if mixed_bag and split == "train":
            labels[0] = 1 - labels[0]
        arrays[f"{split}_images"] = np.asarray(images, dtype=np.uint8)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.uint8)
        arrays[f"{split}_bag"] = np.asarray(groups)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def bag_npz(tmp_path: Path) -> Path:
    """Bags: train 6 per class, val 2, test 3."""
    return write_bag_npz(tmp_path / "bags.npz", {"train": 6, "val": 2, "test": 3})


def bag_recipe(npz: Path, out: Path, **changes: object) -> dict[str, object]:
    """A ``unit: bag`` recipe on a twin backbone with ABMIL and the mean-pooling baseline."""
    recipe: dict[str, object] = {
        "name": "bags",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": {"type": "npz", "path": str(npz), "group_key": "bag"},
        "unit": "bag",
        "presets": [
            {
                "name": "abmil",
                "tuner": "mil",
                "params": {"aggregator": "abmil"},
                "method": {"name": "mil", "params": {"epochs": 5, "pictures": 2}},
            },
            {
                "name": "mean",
                "tuner": "mil",
                "params": {"aggregator": "mean"},
                "method": {"name": "mil", "params": {"epochs": 5, "pictures": 0}},
            },
        ],  # fmt: skip
        "shots": [1, 2],
        "seeds": [0],
        "bootstrap": 20,
        "output": str(out),
    }
    recipe.update(changes)
    return recipe
