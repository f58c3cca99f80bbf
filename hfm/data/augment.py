"""Light training augmentations for tuners that train end to end; never applied at evaluation.

Medical images tolerate only mild changes: a crop that keeps most of the field of view, a small rotation,
a little brightness/contrast. Horizontal flips are on by default but can be switched off for tasks where
laterality matters (e.g. chest X-rays with a situs label).
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field


class AugmentConfig(BaseModel):
    """The recipe block ``training.augment``; every field switches one augmentation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crop_scale: tuple[float, float] = (0.8, 1.0)
    """Area fraction range of the random resized crop; ``(1, 1)`` turns it off."""
    hflip: bool = True
    rotation: float = Field(10.0, ge=0.0, le=180.0)
    """Maximum rotation in degrees (either way)."""
    brightness: float = Field(0.1, ge=0.0, le=1.0)
    contrast: float = Field(0.1, ge=0.0, le=1.0)


class Augment:
    """Applies an :class:`AugmentConfig` to a PIL RGB image, before the backbone's transform.

    Uses torch's random state (seeded per DataLoader worker by torch), so it pickles and stays cheap.
    """

    def __init__(self, config: AugmentConfig | dict[str, Any] | None = None) -> None:
        self.config = config if isinstance(config, AugmentConfig) else AugmentConfig(**(config or {}))
        self._ops: Any = None

    def _build(self) -> Any:
        from torchvision.transforms import v2

        cfg = self.config
        ops: list[Any] = []
        if cfg.rotation > 0:
            ops.append(v2.RandomRotation(cfg.rotation, interpolation=v2.InterpolationMode.BILINEAR))
        if cfg.crop_scale != (1.0, 1.0):
            ops.append(_SizedCrop(cfg.crop_scale))
        if cfg.hflip:
            ops.append(v2.RandomHorizontalFlip())
        if cfg.brightness > 0 or cfg.contrast > 0:
            ops.append(v2.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast))
        return v2.Compose(ops) if ops else _identity

    def __call__(self, image: Image.Image) -> Image.Image:
        if self._ops is None:
            self._ops = self._build()
        out: Image.Image = self._ops(image)
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_ops": None}


def _identity(image: Image.Image) -> Image.Image:
    return image


class _SizedCrop:
    """Random resized crop back to the image's own size (the backbone transform resizes afterwards)."""

    def __init__(self, scale: tuple[float, float]) -> None:
        self.scale = scale

    def __call__(self, image: Image.Image) -> Image.Image:
        from torchvision.transforms import v2

        width, height = image.size
        crop = v2.RandomResizedCrop((height, width), scale=self.scale, ratio=(0.9, 1.1), antialias=True)
        out: Image.Image = crop(image)
        return out
