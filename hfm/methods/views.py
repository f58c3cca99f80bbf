"""Weak and strong views of unlabelled images for consistency-based semi-supervised training.

The weak view is hfm's light training augmentation (:class:`hfm.data.augment.Augment`: a crop keeping most of
the field of view, a flip, a small rotation). The strong view adds torchvision's RandAugment (Cubuk et al. 2020;
FixMatch's choice) or TrivialAugmentWide on top of its own draw of the weak one. Medical-sane defaults: ``Solarize`` and ``Posterize``
(which invert or quantise intensities that carry meaning in X-ray and ultrasound) are left out unless asked for,
and on grey images the colour op (saturation) is dropped, since it cannot change a grey image and would only
waste one of the ``num_ops`` draws. Hue is never shifted: neither torchvision policy has a hue op.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch.utils.data import Dataset

from hfm.backbones.transforms import to_uint8_rgb
from hfm.data.augment import Augment
from hfm.data.splits import Subset

#: Ops of torchvision's RandAugment / TrivialAugmentWide (their names in ``_AUGMENTATION_SPACE``).
OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")  # fmt: skip
COLOUR_OPS = ("Color",)


class StrongAugmentConfig(BaseModel):
    """The preset block ``method.params.strong_augment``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["randaugment", "trivialaugment"] = "randaugment"
    num_ops: int = Field(2, ge=1, le=6)
    """Ops per image (RandAugment only)."""
    magnitude: int = Field(9, ge=0, le=30)
    """Magnitude bin of 31 (RandAugment only; TrivialAugment draws it)."""
    exclude: tuple[str, ...] = ("Solarize", "Posterize")
    """Ops never applied."""

    @field_validator("exclude")
    @classmethod
    def _known_ops(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(OPS))
        if unknown:
            raise ValueError(f"unknown op {unknown[0]!r}: ops are {', '.join(OPS)}")
        if set(OPS) - {"Identity"} <= set(value):
            raise ValueError("exclude leaves no op to apply; drop strong_augment's policy instead")
        return value


class StrongAugment:
    """Applies a :class:`StrongAugmentConfig` to a PIL RGB image (grey images: without colour ops).

    Built lazily and rebuilt after unpickling, like :class:`~hfm.data.augment.Augment`; uses torch's random state.
    """

    def __init__(self, config: StrongAugmentConfig | dict[str, Any] | None = None) -> None:
        self.config = (
            config if isinstance(config, StrongAugmentConfig) else StrongAugmentConfig(**(config or {}))
        )
        self._ops: dict[bool, Any] = {}

    def _build(self, grey: bool) -> Any:
        from torchvision.transforms import v2

        cfg = self.config
        drop = set(cfg.exclude) | (set(COLOUR_OPS) if grey else set())
        if cfg.policy == "randaugment":
            op = v2.RandAugment(num_ops=cfg.num_ops, magnitude=cfg.magnitude)
        else:
            op = v2.TrivialAugmentWide()
        space = {k: v for k, v in type(op)._AUGMENTATION_SPACE.items() if k not in drop}
        op._AUGMENTATION_SPACE = space  # instance-level: the class's table stays as torchvision ships it
        return op

    def ops(self, grey: bool) -> list[str]:
        """Names of the ops this augmentation may apply to a grey (or colour) image."""
        return list(self._get(grey)._AUGMENTATION_SPACE)

    def _get(self, grey: bool) -> Any:
        if grey not in self._ops:
            self._ops[grey] = self._build(grey)
        return self._ops[grey]

    def __call__(self, image: Image.Image) -> Image.Image:
        pixels = np.asarray(image)
        grey = pixels.ndim == 2 or bool(
            (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
        )
        out: Image.Image = self._get(grey)(image)
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_ops": {}}


class PoolViews(Dataset[tuple[torch.Tensor, ...]]):
    """The unlabelled pool as views: ``(weak,)`` or ``(weak, strong)`` tensors through the backbone's transform.

    No label and no position are yielded: an unlabelled batch carries images only.

    Args:
        pool: The draw's unlabelled examples (:meth:`hfm.methods.base.RunContext.pool`).
        transform: The backbone's preprocessing.
        weak: The weak augmentation.
        strong: The strong augmentation, applied after a second, independent draw of the weak one; ``None``
            yields the weak view only.
    """

    def __init__(
        self,
        pool: Subset,
        transform: Any,
        weak: Augment,
        strong: StrongAugment | None = None,
    ) -> None:
        self.pool, self.transform, self.weak, self.strong = pool, transform, weak, strong

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        image = Image.fromarray(to_uint8_rgb(self.pool.image(index)))
        weak = self.transform(self.weak(image))
        if self.strong is None:
            return (weak,)
        return weak, self.transform(self.strong(self.weak(image)))  # its own crop and flip, as in FixMatch
