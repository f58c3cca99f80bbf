"""MedMNIST-layout ``.npz`` files: ``{split}_images``, ``{split}_labels``, optional groups and class names."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from hfm.data.images import ArrayReader
from hfm.data.registry import Raw, SourceBlock, register_source
from hfm.data.splits import Subset
from hfm.errors import DataError

SPLITS = ("train", "val", "test")


@register_source("npz")
class NpzSource(SourceBlock):
    """MedMNIST-layout ``.npz``: ``{split}_images`` and ``{split}_labels`` (labels ``(N,)`` or ``(N, 1)``).

    Either a local ``path`` or a MedMNIST ``name`` (+ ``size``) downloaded from the official record with
    its checksum verified. ``group_key`` names per-split group arrays (``{split}_{group_key}``, e.g. BCCD's
    ``source_image``); a ``classes`` array inside the file names the classes.
    """

    path: Path | None = None
    name: str | None = None
    size: Literal[28, 64, 128, 224] = 28
    group_key: str | None = None

    @model_validator(mode="after")
    def _path_or_name(self) -> NpzSource:
        if (self.path is None) == (self.name is None):
            raise ValueError("give exactly one of 'path' (a local .npz) or 'name' (a MedMNIST dataset)")
        return self

    def load(self) -> Raw:
        """Read every split the file has (see :func:`load_npz`)."""
        return load_npz(self)


def load_npz(config: NpzSource) -> Raw:
    """Read every split the file has; labels ``(N,)`` or ``(N, 1)``; ids are ``split/index``."""
    if config.path is not None:
        path = Path(config.path).expanduser()
        where = str(config.path)
        default_classes: list[str] | None = None
    else:
        from hfm.hub.data_fetch import fetch_medmnist, medmnist_classes

        assert config.name is not None  # guaranteed by the source model
        path = fetch_medmnist(config.name, config.size)
        where = f"MedMNIST {config.name} ({config.size}px)"
        default_classes = medmnist_classes(config.name)
    arrays = _read(path, where)
    present = [split for split in SPLITS if f"{split}_images" in arrays]
    if "train" not in present:
        keys = ", ".join(sorted(arrays)) or "none"
        raise DataError(f"{where}: no 'train_images' array (MedMNIST layout expected; arrays found: {keys})")
    parts: dict[str, Subset] = {}
    skipped: list[str] = []
    max_label = 0
    for split in present:
        images = arrays[f"{split}_images"]
        labels = _labels(arrays, split, where)
        if images.ndim not in (3, 4):
            raise DataError(
                f"{where}: {split}_images has shape {images.shape}; expected (N, H, W) or (N, H, W, C)"
            )
        if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
            raise DataError(
                f"{where}: {split}_images has {images.shape[-1]} channels (shape {images.shape}); hfm reads grey "
                "(1), RGB (3) or RGBA (4) images: convert them first"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{where}: {split}_images has {len(images)} images but {split}_labels has {len(labels)}"
            )
        groups = None
        if config.group_key is not None:
            key = f"{split}_{config.group_key}"
            if key not in arrays:
                raise DataError(f"{where}: group_key {config.group_key!r} but no array {key!r} in the file")
            groups = [str(g) for g in arrays[key].reshape(-1).tolist()]
            if len(groups) != len(labels):
                raise DataError(
                    f"{where}: {key} has {len(groups)} entries but {split}_labels has {len(labels)}"
                )
        if len(labels):
            max_label = max(max_label, int(labels.max()))
        keep = _finite_rows(images, split, where, config.on_error)
        skipped.extend(f"{split}/{i}" for i in np.flatnonzero(~keep))
        rows = np.flatnonzero(keep)
        whole = bool(keep.all())
        parts[split] = Subset(
            ids=[f"{split}/{i}" for i in rows],
            labels=labels if whole else labels[rows],
            reader=ArrayReader(images if whole else images[rows]),
            groups=groups if groups is None or whole else [groups[i] for i in rows],
        )
    classes = _classes(config.classes, arrays, default_classes, max_label)
    info = {"skipped_files": len(skipped), "skipped": skipped[:20]} if skipped else {}
    return Raw(parts=parts, classes=classes, where=where, info=info)


def _finite_rows(images: np.ndarray, split: str, where: str, on_error: str) -> np.ndarray:
    """Which images have only finite pixels; a NaN or infinite pixel is an error naming the image, or a skip.

    Without this, min/max scaling to ``uint8`` turns an all-NaN image black and partly-NaN pixels to 0,
    silently.
    """
    if images.dtype.kind not in "fc" or not len(images):
        return np.ones(len(images), dtype=bool)
    keep = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
    if not keep.all() and on_error == "raise":
        first = int(np.flatnonzero(~keep)[0])
        raise DataError(
            f"{where}: image {split}/{first} has NaN or infinite pixels ({int((~keep).sum())} of {len(images)} "
            f"{split} images do); fix them, or set on_error: skip to leave them out"
        )
    return keep


def _read(path: Path, where: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{where}: file not found (check 'path')")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        reason = (
            "not a zip archive" if isinstance(err, (zipfile.BadZipFile, ValueError)) else _first_line(err)
        )
        raise DataError(f"{where}: not a readable .npz file ({reason}); save it with numpy.savez") from None


def _first_line(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) <= 120 else text[:120].rsplit(" ", 1)[0] + " ..."


def _labels(arrays: dict[str, np.ndarray], split: str, where: str) -> np.ndarray:
    key = f"{split}_labels"
    if key not in arrays:
        raise DataError(f"{where}: {split}_images has no matching {key!r} array")
    labels = arrays[key]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(
            f"{where}: {key} has shape {labels.shape}; hfm needs one class per image ((N,) or (N, 1)), "
            "multi-label sets are not supported"
        )
    if labels.dtype.kind not in "iub":
        raise DataError(f"{where}: {key} must hold integer class indices, got dtype {labels.dtype}")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{where}: {key} has negative label {int(labels.min())}")
    return labels.astype(np.int64)


def _classes(
    given: list[str] | None, arrays: dict[str, Any], default: list[str] | None, max_label: int
) -> list[str]:
    if given is not None:
        return list(given)
    if "classes" in arrays:
        return [str(name) for name in arrays["classes"].reshape(-1).tolist()]
    if default is not None:
        return default
    return [str(i) for i in range(max_label + 1)]
