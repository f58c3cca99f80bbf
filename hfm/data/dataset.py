"""A torch ``Dataset`` over a subset: image tensor, label and position, through the backbone's transform."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from hfm.backbones.transforms import to_uint8_rgb
from hfm.data.splits import Subset


class ImageDataset(Dataset[tuple[torch.Tensor, int, int]]):
    """Yields ``(image_tensor, label, index)`` for every example of ``subset``.

    Every image is first made ``uint8`` RGB (grey, RGBA, palette and 16-bit included), then optionally
    augmented (training only), then passed through ``transform`` (normally ``backbone.transform``).
    The dataset pickles, so it works with DataLoader worker processes.

    Args:
        subset: The examples.
        transform: PIL/array to normalised tensor ``[3, S, S]``.
        augment: Training augmentation on the PIL RGB image (e.g. :class:`hfm.data.augment.Augment`);
            leave ``None`` for evaluation.
    """

    def __init__(
        self,
        subset: Subset,
        transform: Callable[[Any], torch.Tensor],
        augment: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.subset = subset
        self.transform = transform
        self.augment = augment

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image = Image.fromarray(to_uint8_rgb(self.subset.image(index)))
        if self.augment is not None:
            image = self.augment(image)
        return self.transform(image), int(self.subset.labels[index]), int(index)
