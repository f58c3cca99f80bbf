"""Preprocessing that follows the backbone: any medical image in, the tensor the model expects out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

if TYPE_CHECKING:
    from hfm.backbones.spec import BackboneSpec

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
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scale = 255.0 / (high - low) if high > low else 0.0
        array = np.clip((array - low) * scale, 0, 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array)


@dataclass(frozen=True)
class ImageTransform:
    """Resize (keeping the short side), centre-crop, scale to [0, 1] and normalise, as the spec says."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0

    @classmethod
    def from_spec(cls, spec: BackboneSpec) -> ImageTransform:
        return cls(
            input_size=spec.input_size,
            mean=tuple(spec.mean),  # type: ignore[arg-type]
            std=tuple(spec.std),  # type: ignore[arg-type]
            interpolation=spec.interpolation,
            crop_pct=spec.crop_pct,
        )

    def __call__(self, image: Any) -> torch.Tensor:
        """One image to a normalised ``float32`` tensor ``[3, input_size, input_size]``."""
        pil = Image.fromarray(to_uint8_rgb(image))
        size = self.input_size
        resize_to = int(round(size / self.crop_pct)) if self.crop_pct < 1.0 else size
        resample = _INTERPOLATION.get(self.interpolation, Image.Resampling.BICUBIC)
        w, h = pil.size
        if (w, h) != (resize_to, resize_to):
            if self.crop_pct < 1.0:
                scale = resize_to / min(w, h)
                pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), resample)
            else:
                pil = pil.resize((resize_to, resize_to), resample)
        w, h = pil.size
        if (w, h) != (size, size):
            left, top = (w - size) // 2, (h - size) // 2
            pil = pil.crop((left, top, left + size, top + size))
        # In numpy: a handful of tiny torch ops per image would compete with the model for its threads
        # when images are decoded in the main process.
        scaled: np.ndarray = np.asarray(pil, dtype=np.float32) * np.float32(1.0 / 255.0)
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
        x = images.float().div_(255.0)
        if x.shape[-2:] != (self.input_size, self.input_size):
            mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode=mode, align_corners=False)
        return self.normalize(x)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }
