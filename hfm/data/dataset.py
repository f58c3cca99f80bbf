"""The torch ``Dataset`` over a subset (image tensor, label, position, through the backbone's transform),
and the helpers that accept either a subset or a ready torch dataset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from hfm.backbones.transforms import to_uint8_rgb
from hfm.data.splits import Subset
from hfm.errors import DataError


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


def is_subset(data: Any) -> bool:
    """Whether ``data`` looks like a :class:`hfm.data.Subset` (ids, labels and an image reader)."""
    return hasattr(data, "image") and hasattr(data, "labels") and hasattr(data, "ids")


def as_dataset(data: Any, transform: Callable[[Any], torch.Tensor]) -> Dataset[Any]:
    """A torch dataset yielding ``(image, label, index)``: a Subset becomes an :class:`ImageDataset`."""
    if is_subset(data):
        return ImageDataset(data, transform)
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise DataError(f"expected a hfm.data.Subset or a torch Dataset, got {type(data).__name__}")
    return data  # type: ignore[no-any-return]


def labels_of(data: Any) -> torch.Tensor | None:
    """Integer labels of a Subset or an ImageDataset (``.subset.labels``), if they can be read cheaply."""
    subset = data if is_subset(data) else getattr(data, "subset", None)
    if subset is None or not hasattr(subset, "labels"):
        return None
    return torch.as_tensor(subset.labels, dtype=torch.long)


def data_fingerprint(data: Any) -> str | None:
    """The fingerprint of a Subset, or of the Subset behind an ImageDataset; ``None`` if unknown."""
    subset = data if is_subset(data) else getattr(data, "subset", None)
    fingerprint = getattr(subset, "fingerprint", None)
    return fingerprint() if callable(fingerprint) else None


def data_content(data: Any) -> str | None:
    """The content fingerprint of a Subset (or the Subset behind an ImageDataset); ``None`` if unknown."""
    subset = data if is_subset(data) else getattr(data, "subset", None)
    content = getattr(subset, "content_fingerprint", None)
    return content() if callable(content) else None
