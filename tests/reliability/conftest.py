"""Helpers shared by the reliability suite: tiny data on disk and seconds-long recipes on a twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image


def write_folder(
    root: Path, n_per_class: int = 6, classes: tuple[str, ...] = ("a", "b", "c"), seed: int = 0
) -> Path:
    """Class folders of small random PNGs (a real file layout, unlike the synthetic source)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            pixels = rng.integers(0, 255, size=(24, 24, 3), dtype=np.uint8)
            pixels[..., c % 3] = 255
            Image.fromarray(pixels).save(folder / f"img{i}.png")
    return root


def write_npz(path: Path, images: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> Path:
    """A MedMNIST-layout npz from per-split arrays."""
    arrays = {f"{s}_images": a for s, a in images.items()} | {f"{s}_labels": a for s, a in labels.items()}
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def recipe(out: Path, data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A seconds-long probe sweep on a timm twin."""
    base: dict[str, Any] = {
        "name": "rel",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": data,
        "presets": ["probe/logreg"],
        "shots": [1],
        "seeds": [0],
        "bootstrap": 20,
        "output": str(out),
    }
    base.update(changes)
    return base


def synthetic(n_classes: int = 3) -> dict[str, Any]:
    return {
        "type": "synthetic",
        "n_classes": n_classes,
        "n_per_class": 4,
        "n_val_per_class": 2,
        "n_test_per_class": 3,
    }


@pytest.fixture
def folder_data(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "images")
