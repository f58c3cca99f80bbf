"""Preprocessing that follows the backbone: any medical image in, the tensor the model expects out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hfm.errors import DataError

if TYPE_CHECKING:
    from hfm.backbones.spec import BackboneSpec

# MedSAM_Inference.py clips the range at 1e-8 before dividing.
_MINMAX_EPS = 1e-8
_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def to_uint8_rgb(image: Any) -> np.ndarray:
    """Convert a PIL image or array (grey, RGB, RGBA, palette, 8/16-bit, float) to ``uint8`` ``[H, W, 3]``.

    16-bit and float images are scaled by their own min/max range (medical images rarely use the full
    16-bit range), grey is repeated to three channels and alpha is dropped.
    """
    if isinstance(image, Image.Image):
        if image.mode in ("P", "PA", "LA", "1", "CMYK", "YCbCr", "HSV"):
            image = image.convert("RGBA" if image.mode in ("P", "PA", "LA") else "RGB")
        array = np.asarray(image)
    elif isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
    else:
        array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"expected a grey, RGB or RGBA image, got an array of shape {array.shape}")
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise DataError("image has NaN or infinite pixels; fix or remove it")
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scale = 255.0 / (high - low) if high > low else 0.0
        array = np.clip((array - low) * scale, 0, 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array)


@dataclass(frozen=True)
class ImageTransform:
    """Resize, centre-crop, scale to [0, 1] and normalise, as the spec says.

    The geometry follows torchvision, which most publishers' eval transforms use: the short side (``shortest``;
    both sides for ``squash``) is resized to ``floor(input_size / crop_pct)`` (timm's ``scale_size``), the long
    side to ``int(short * long / short_before)`` (``transforms.Resize(int)``), then the centre crop starts at
    ``round((side - input_size) / 2)`` (``transforms.CenterCrop``). Resampling is PIL's (what
    ``transforms.Resize`` does on a PIL image).
    """

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    scaling: str = "unit"
    resize_mode: str = "shortest"

    @classmethod
    def from_spec(cls, spec: BackboneSpec) -> ImageTransform:
        return cls(
            input_size=spec.input_size,
            mean=tuple(spec.mean),  # type: ignore[arg-type]
            std=tuple(spec.std),  # type: ignore[arg-type]
            interpolation=spec.interpolation,
            crop_pct=spec.crop_pct,
            scaling=spec.scaling,
            resize_mode=spec.resize_mode,
        )

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` after the resize, before the centre crop."""
        scale_to = math.floor(self.input_size / self.crop_pct)
        if self.resize_mode == "squash":
            return scale_to, scale_to
        short, long = min(width, height), max(width, height)
        long_to = int(scale_to * long / short)
        return (scale_to, long_to) if width <= height else (long_to, scale_to)

    def resize(self, pil: Image.Image) -> Image.Image:
        """The resized and centre-cropped ``input_size`` square image."""
        size = self.input_size
        resample = _INTERPOLATION.get(self.interpolation, Image.Resampling.BICUBIC)
        target = self.resized_size(*pil.size)
        if pil.size != target:
            pil = pil.resize(target, resample)
        w, h = pil.size
        if (w, h) != (size, size):
            left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
            pil = pil.crop((left, top, left + size, top + size))
        return pil

    def __call__(self, image: Any) -> torch.Tensor:
        """One image to a normalised ``float32`` tensor ``[3, input_size, input_size]``."""
        pil = self.resize(Image.fromarray(to_uint8_rgb(image)))
        # In numpy: a handful of tiny torch ops per image would compete with the model for its threads
        # when images are decoded in the main process.
        pixels: np.ndarray = np.asarray(pil, dtype=np.float32)
        scaled = _minmax(pixels) if self.scaling == "minmax" else pixels / np.float32(255.0)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        normalised = (scaled - mean) / std
        return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))

    def normalize(self, tensor: torch.Tensor) -> torch.Tensor:
        """Normalise a ``[..., 3, H, W]`` tensor in [0, 1]."""
        mean = torch.tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(3, 1, 1)
        return (tensor - mean) / std

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Resize and normalise an already-decoded ``uint8`` batch ``[B, 3, H, W]`` on its device."""
        x = images.float()
        size = self.input_size
        width, height = self.resized_size(int(x.shape[-1]), int(x.shape[-2]))
        if (x.shape[-1], x.shape[-2]) != (width, height):
            mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
            x = F.interpolate(x, size=(height, width), mode=mode, align_corners=False, antialias=True)
            x = x.clamp_(0.0, 255.0)
        if (width, height) != (size, size):
            left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
            x = x[..., top : top + size, left : left + size]
        if self.scaling == "minmax":
            low = x.amin(dim=(1, 2, 3), keepdim=True)
            high = x.amax(dim=(1, 2, 3), keepdim=True)
            x = (x - low) / (high - low).clamp_min(_MINMAX_EPS)
        else:
            x = x.div_(255.0)
        return self.normalize(x)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "scaling": self.scaling,
            "resize_mode": self.resize_mode,
        }


def _minmax(pixels: np.ndarray) -> np.ndarray:
    """Scale one image by its own range to [0, 1] (all channels together; a flat image becomes 0)."""
    low, high = float(pixels.min()), float(pixels.max())
    return (pixels - np.float32(low)) / np.float32(max(high - low, _MINMAX_EPS))
