"""Multi-crop views of the train images (lightly's DINO transform), reproducible per (seed, epoch, image).

Each image's views are drawn from a random state seeded by ``(seed, epoch, image index)`` alone, so the views
do not depend on the number of DataLoader workers, the number of processes, or where a run was resumed.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from hfm.backbones.transforms import to_uint8_rgb

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone
    from hfm.data.splits import Subset
    from hfm.pretrain.config import ViewsBlock


def needs_lightly() -> Any:
    """Import lightly or say how to install it (one line)."""
    try:
        import lightly  # noqa: F401
    except ImportError as err:  # pragma: no cover - lightly is installed in dev
        from hfm.pretrain.config import PretrainError

        raise PretrainError(
            "hfm pretrain builds on lightly: install it with `pip install 'hfm-hub[ssl]'`"
        ) from err
    return lightly


def accepts_any_size(backbone: Backbone) -> bool:
    """Whether the backbone takes inputs smaller than its input size (CNNs, dynamic-size ViTs)."""
    model: Any = backbone.model
    if backbone.family != "timm":
        return False
    if getattr(model, "pos_embed", None) is None and not hasattr(model, "patch_embed"):
        return True  # convolutional: any size
    return bool(getattr(model, "dynamic_img_size", False))


def local_size(backbone: Backbone, views: ViewsBlock) -> int:
    """The pixel size of the local views for this backbone."""
    size = backbone.spec.input_size
    if not accepts_any_size(backbone):
        return size
    return views.local_size or max(8, size // 2)


def make_transform(backbone: Backbone, views: ViewsBlock) -> Any:
    """lightly's ``DINOTransform`` with the backbone's input size and normalisation and grey-sane jitter."""
    needs_lightly()
    from lightly.transforms.dino_transform import DINOTransform

    # lightly applies a strength of 0.5 to every jitter amount (its second global view always uses 0.5), so
    # the amounts are doubled to mean what the recipe says.
    return DINOTransform(
        global_crop_size=backbone.spec.input_size,
        global_crop_scale=views.global_scale,
        local_crop_size=local_size(backbone, views),
        local_crop_scale=views.local_scale,
        n_local_views=views.local_crops,
        hf_prob=views.hflip,
        vf_prob=views.vflip,
        cj_prob=views.jitter_prob,
        cj_strength=0.5,
        cj_bright=2 * views.brightness,
        cj_contrast=2 * views.contrast,
        cj_sat=2 * views.saturation,
        cj_hue=min(0.5, 2 * views.hue),
        random_gray_scale=0.0,
        gaussian_blur=views.blur,
        sigmas=views.sigmas,
        solarization_prob=0.0,
        normalize={"mean": list(backbone.spec.mean), "std": list(backbone.spec.std)},
    )


def make_mae_transform(backbone: Backbone, views: ViewsBlock) -> Any:
    """lightly's ``MAETransform``: one random resized crop (``views.global_scale``'s lower bound) and a flip."""
    needs_lightly()
    from lightly.transforms.mae_transform import MAETransform

    return MAETransform(
        input_size=backbone.spec.input_size,
        min_scale=views.global_scale[0],
        normalize={"mean": list(backbone.spec.mean), "std": list(backbone.spec.std)},
    )


CACHE_BYTES = 2 * 2**30


def view_seed(seed: int, epoch: int, index: int) -> int:
    """The random state of one image's views in one epoch."""
    return (seed * 1_000_003 + epoch * 100_003 + index * 7 + 12_345) % (2**32 - 1)


class MultiCropDataset(Dataset[list[torch.Tensor]]):
    """The views of every train image: a list ``[global_0, global_1, local_0, ...]`` of tensors.

    Decoded images are kept in memory up to ``cache_bytes`` (per DataLoader worker): pretraining reads every
    image every epoch, and decoding PNG files would otherwise cost more than the model's step on a small CPU.

    Args:
        subset: The train images (labels unused).
        transform: Image to list of views (:func:`make_transform`).
        seed: Pretraining seed.
        cache_bytes: Memory for decoded images.
    """

    def __init__(self, subset: Subset, transform: Any, seed: int, *, cache_bytes: int = CACHE_BYTES) -> None:
        self.subset = subset
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.cache_bytes = cache_bytes
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.subset)

    def _pixels(self, index: int) -> np.ndarray:
        """The decoded image; kept in memory while the cache has room (every epoch reads every image)."""
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        pixels = to_uint8_rgb(self.subset.image(index))
        if self._cached_bytes + pixels.nbytes <= self.cache_bytes:
            self._cache[index] = pixels
            self._cached_bytes += pixels.nbytes
        return pixels

    def __getitem__(self, index: int) -> list[torch.Tensor]:
        image = Image.fromarray(self._pixels(index))
        state = view_seed(self.seed, self.epoch, index)
        random.seed(state)
        np.random.seed(state)
        torch.manual_seed(state)
        return list(self.transform(image))
