"""Every catalog entry embeds exactly as its publishers' documented snippet does.

For each entry, :mod:`publisher_recipes` computes the embedding with timm / transformers / open_clip /
torchvision directly on the twin's files, with the publishers' preprocessing values and pooling; hfm's
``load_backbone(name, twin=True)`` and its ``transform`` must give the same vector for the same PIL image, on
synthetic images and on real medical images from the shared data folder. A wrong interpolation, mean/std,
crop, scaling or pooling in an entry fails here (``test_a_broken_entry_is_caught`` shows it does).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from publisher_recipes import RECIPES

import hfm
from hfm.backbones.base import Backbone
from hfm.backbones.catalog import CATALOG
from hfm.backbones.spec import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec

NAMES = sorted(CATALOG)
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


@functools.cache
def _backbone(name: str) -> Backbone:
    return hfm.load_backbone(name, twin=True)


@functools.cache
def _reference(name: str) -> object:
    backbone = _backbone(name)
    assert backbone.source_path is not None
    return RECIPES[name](Path(backbone.source_path), backbone.spec.input_size)


# Publishers whose documented transform resizes the short side without a crop (``transforms.Resize(224)``
# alone: UNI's get_encoder.py, TRIDENT for H-optimus and Hibou) hand a non-square tile to a dynamic-size ViT;
# hfm centre-crops it to the square. The two agree on square images only, which is what these models get.
ASPECT_KEPT = {
    "pathology/uni",
    "pathology/uni2-h",
    "pathology/h-optimus-0",
    "pathology/h-optimus-1",
    "pathology/hibou-b",
    "pathology/hibou-l",
}


def _synthetic(square_only: bool = False) -> list[Image.Image]:
    """RGB images of sizes no twin uses, so every entry resizes (and crops) them; some not square."""
    rng = np.random.default_rng(0)
    sizes = [(50, 50), (45, 45), (71, 71)] + ([] if square_only else [(45, 71), (71, 45)])
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def _embed(backbone: Backbone, image: Image.Image) -> torch.Tensor:
    with torch.no_grad():
        return backbone(backbone.transform(image).unsqueeze(0))


def _assert_matches(name: str, images: list[Image.Image]) -> None:
    backbone, reference = _backbone(name), _reference(name)
    for image in images:
        expected = reference(image)  # type: ignore[operator]
        torch.testing.assert_close(_embed(backbone, image), expected, **TOLERANCE)


def test_every_catalog_entry_has_a_publisher_recipe() -> None:
    assert set(RECIPES) == set(CATALOG)


@pytest.mark.parametrize("name", NAMES)
def test_embedding_equals_the_publisher_recipe(name: str) -> None:
    _assert_matches(name, _synthetic(square_only=name in ASPECT_KEPT))


def _real_images(shared_data: Path) -> list[Image.Image]:
    """A breast ultrasound PNG (256 px), a blood-cell crop (64 px) and a BreastMNIST image (28 px, grey)."""
    busi = sorted((shared_data / "busi" / "benign").glob("*.png"))
    if not busi:
        pytest.skip("no BUSI images in the shared data folder")
    images = [Image.open(busi[0]).convert("RGB")]
    bccd = np.load(shared_data / "bccd" / "bccd_cell_crops_64.npz")
    images.append(Image.fromarray(bccd["test_images"][0]).convert("RGB"))
    mnist = np.load(shared_data / "medmnist" / "breastmnist.npz")
    images.append(Image.fromarray(mnist["test_images"][0]).convert("RGB"))
    return images


@pytest.mark.parametrize("name", NAMES)
def test_embedding_equals_the_publisher_recipe_on_real_images(name: str, shared_data: Path) -> None:
    _assert_matches(name, _real_images(shared_data))


def _broken(spec: BackboneSpec, fact: str) -> BackboneSpec:
    """The entry with one fact wrong, the way a careless catalog edit would get it wrong."""
    if fact == "resize_mode":
        return spec.replace(resize_mode="squash" if spec.resize_mode == "shortest" else "shortest")
    if fact == "interpolation":
        return spec.replace(interpolation="bilinear" if spec.interpolation == "bicubic" else "bicubic")
    if fact == "normalisation":
        if spec.scaling == "minmax":
            return spec.replace(scaling="unit", mean=IMAGENET_MEAN, std=IMAGENET_STD)
        return spec.replace(mean=(0.5, 0.5, 0.5) if spec.mean != (0.5, 0.5, 0.5) else IMAGENET_MEAN)
    if spec.fc_norm:
        return spec.replace(fc_norm=False)
    wrong = {"cls": "mean", "mean": "cls", "cls+mean": "cls", "pooler": "mean"}[spec.pooling]
    return spec.replace(pooling=wrong)  # type: ignore[arg-type]


# Resize modes agree on square images, the only ones the ASPECT_KEPT entries are compared on.
BREAKS = [
    (name, fact)
    for name in NAMES
    for fact in ("interpolation", "normalisation", "pooling", "resize_mode")
    if not (fact == "resize_mode" and name in ASPECT_KEPT)
]


@pytest.mark.parametrize(("name", "fact"), BREAKS)
def test_a_broken_entry_is_caught(name: str, fact: str) -> None:
    backbone = _backbone(name)
    broken = Backbone(backbone.model, _broken(backbone.spec, fact), family=backbone.family)
    broken.eval()
    image = _synthetic()[-1 if fact == "resize_mode" else 0]
    expected = _reference(name)(image)  # type: ignore[operator]
    got = _embed(broken, image)
    assert got.shape != expected.shape or not torch.allclose(got, expected, **TOLERANCE)
