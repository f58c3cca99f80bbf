"""Tiny pretrain recipes: a 2-block ViT from scratch (or a twin) on synthetic 32 px images, a few steps."""

from __future__ import annotations

from typing import Any

import pytest

MERGED = ("objective", "views", "adapt", "schedule", "monitor")
VIT = {
    "architecture": "vit_tiny_patch16_224",
    "kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "input_size": 32,
}


def tiny_recipe(**over: Any) -> dict[str, Any]:
    """A recipe that pretrains in about a second; keyword groups are merged over it."""
    recipe: dict[str, Any] = {
        "name": "tiny",
        "backbone": VIT,
        "data": {"type": "synthetic", "n_classes": 2, "n_per_class": 12, "size": 32},
        "views": {"local_crops": 2},
        "objective": {"out_dim": 32, "hidden_dim": 32, "bottleneck_dim": 16},
        "schedule": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "progress": False},
        "monitor": {"max_images": 24},
        "adapt": {},
    }
    for key, value in over.items():
        recipe[key] = {**recipe[key], **value} if key in MERGED else value
    return recipe


MAE = {"name": "mae", "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}


def mae_recipe(**over: Any) -> dict[str, Any]:
    """The tiny ViT recipe with the MAE objective and its single-view crops."""
    objective = {**MAE, **over.pop("objective", {})}
    recipe = tiny_recipe(**over)
    recipe["objective"] = objective
    recipe["views"] = {"global_scale": [0.5, 1.0]}
    return recipe


@pytest.fixture
def recipe_factory() -> Any:
    return tiny_recipe
