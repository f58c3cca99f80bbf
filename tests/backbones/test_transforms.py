"""Preprocessing follows the backbone: any medical image mode in, the normalised tensor the model expects out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hfm.backbones.transforms import ImageTransform, to_uint8_rgb

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _unnormalise(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)


RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 255, (48, 40), dtype=np.uint8)
INPUTS = {
    "grey-array": GREY,
    "grey-pil": Image.fromarray(GREY),
    "rgb-array": RNG.integers(0, 255, (48, 40, 3), dtype=np.uint8),
    "rgba-pil": Image.fromarray(RNG.integers(0, 255, (48, 40, 4), dtype=np.uint8), "RGBA"),
    "uint16-array": (RNG.integers(1000, 5000, (48, 40))).astype(np.uint16),
    "uint16-pil": Image.fromarray((RNG.integers(1000, 5000, (48, 40))).astype(np.uint16)),
    "float-array": RNG.normal(size=(48, 40)).astype(np.float32),
    "palette-pil": Image.fromarray(GREY).convert("P"),
    "chw-array": RNG.integers(0, 255, (3, 48, 40), dtype=np.uint8),
    "bool-array": RNG.integers(0, 2, (48, 40)).astype(bool),
}


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_every_input_mode_gives_the_model_tensor(kind: str) -> None:
    transform = ImageTransform(32, MEAN, STD)
    x = transform(INPUTS[kind])
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    pixels = _unnormalise(x)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_grey_is_repeated_to_three_channels() -> None:
    x = _unnormalise(ImageTransform(32, MEAN, STD)(GREY))
    torch.testing.assert_close(x[0], x[1])
    torch.testing.assert_close(x[1], x[2])


def test_sixteen_bit_uses_its_own_range() -> None:
    array = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    out = to_uint8_rgb(array)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out.min() == 0 and out.max() == 255


def test_alpha_is_dropped() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 7
    assert (to_uint8_rgb(rgba) == np.array([200, 0, 0], dtype=np.uint8)).all()


def test_crop_pct_resizes_short_side_then_centre_crops() -> None:
    image = np.zeros((40, 80), dtype=np.uint8)
    image[:, 20:60] = 255  # a bright centre square
    x = _unnormalise(ImageTransform(32, MEAN, STD, crop_pct=0.8)(image))
    assert x.shape == (3, 32, 32)
    assert x[0, 16, 16] > 0.9  # the centre survives the crop


def test_bad_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="grey, RGB or RGBA"):
        to_uint8_rgb(np.zeros((5, 6, 7)))


def test_batch_resizes_uint8_on_device() -> None:
    batch = torch.randint(0, 255, (2, 3, 40, 40), dtype=torch.uint8)
    out = ImageTransform(32, MEAN, STD).batch(batch)
    assert out.shape == (2, 3, 32, 32)


def test_minmax_scaling_uses_the_image_range_over_all_channels() -> None:
    """MedSAM: (x - min) / (max - min) over the whole resized image, then no mean/std (MedSAM_Inference.py)."""
    image = RNG.integers(60, 180, (32, 32, 3), dtype=np.uint8)
    x = ImageTransform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), scaling="minmax")(image)
    expected = (image.astype(np.float32) - image.min()) / (image.max() - image.min())
    torch.testing.assert_close(x, torch.from_numpy(expected.transpose(2, 0, 1)))
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    flat = ImageTransform(32, (0.0,) * 3, (1.0,) * 3, scaling="minmax")(np.full((32, 32), 7, np.uint8))
    assert float(flat.abs().max()) == 0.0  # a flat image: range clipped at 1e-8, no division by zero


def test_batch_minmax_matches_the_per_image_path() -> None:
    images = RNG.integers(30, 200, (2, 3, 32, 32), dtype=np.uint8)
    transform = ImageTransform(32, (0.0,) * 3, (1.0,) * 3, scaling="minmax")
    batch = transform.batch(torch.from_numpy(images))
    one = torch.stack([transform(image) for image in images])
    torch.testing.assert_close(batch, one)


@pytest.mark.parametrize(("width", "height"), [(45, 71), (71, 45), (50, 50), (39, 40)])
def test_resize_and_crop_follow_torchvision(width: int, height: int) -> None:
    """Short side to floor(size / crop_pct), long side truncated, centre crop rounded: as Resize + CenterCrop."""
    from torchvision import transforms as T

    image = Image.fromarray(RNG.integers(0, 255, (height, width, 3), dtype=np.uint8))
    ours = ImageTransform(32, MEAN, STD, interpolation="bilinear", crop_pct=0.875)(image)
    reference = T.Compose(
        [
            T.Resize(36, interpolation=T.InterpolationMode.BILINEAR),
            T.CenterCrop(32),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )(image)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
