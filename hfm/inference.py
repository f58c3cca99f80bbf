"""Prediction on image files with a saved or published adapter (what ``hfm predict`` runs)."""

from __future__ import annotations

from pathlib import Path

import torch

from hfm.adapter import load_adapter
from hfm.data.images import open_image
from hfm.errors import HfmError


def read_image_file(path: str) -> object:
    """An image file as the backbone's preprocessing takes it (DICOM by its ``.dcm`` suffix, pixel data only).

    Raises:
        HfmError: The file cannot be decoded.
    """
    if path.lower().endswith(".dcm"):
        from hfm.data.dicom import DicomOpener

        return DicomOpener()(Path(path))
    try:
        return open_image(Path(path))
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file
        raise HfmError(f"{path}: cannot read the image ({err}); pass PNG, JPEG, TIFF, BMP or DICOM") from None


def predict_files(
    adapter: str,
    paths: list[str],
    *,
    batch_size: int = 32,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> list[dict[str, object]]:
    """Classify image files with an adapter folder or Hub repo id.

    The adapter is loaded once; each image is read (DICOM by its ``.dcm`` suffix, pixel data only) and
    goes through the backbone's own preprocessing.

    Returns:
        One row per image: ``image`` (the path as given), ``predicted`` (class name) and ``probabilities``
        (class name -> probability).
    """
    model = load_adapter(
        adapter, revision=revision, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
    )
    if getattr(model, "aggregates_bags", False):
        raise HfmError(
            f"adapter {adapter} classifies bags, not single images: use hfm predict ADAPTER --bag DIR_OR_CSV"
        )
    transform = model.backbone.transform
    classes = [str(c) for c in model.classes]
    rows: list[dict[str, object]] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        tensors = []
        for path in chunk:
            tensors.append(transform(read_image_file(path)))
        proba = model.predict_proba(torch.stack(tensors)).cpu()
        for path, p in zip(chunk, proba.tolist(), strict=True):
            best = max(range(len(p)), key=p.__getitem__)
            probabilities = dict(zip(classes, p, strict=True))
            rows.append({"image": path, "predicted": classes[best], "probabilities": probabilities})
    return rows
