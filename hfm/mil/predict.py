"""Predict bags with a saved or published MIL adapter (what ``hfm predict ADAPTER --bag DIR_OR_CSV`` runs).

A bag is a folder of image files (the folder is the bag), or a CSV with columns ``bag_id,path`` listing the
images of one or more bags (relative paths are read from the CSV's folder). Every image goes through the
backbone's own preprocessing; a bag with more than ``max_instances`` images is sampled to that many (the row
says so) rather than running out of memory.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from hfm.adapter import load_adapter
from hfm.errors import HfmError
from hfm.inference import read_image_file
from hfm.mil.fit import predict_bags
from hfm.tuners.mil import MilModel

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")


def read_bags(source: str | Path) -> dict[str, list[str]]:
    """Bag id -> image paths, from a folder (one bag) or a ``bag_id,path`` CSV (one or more bags).

    Raises:
        HfmError: The source is missing, the CSV lacks its columns, or a bag has no image.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(str(p) for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise HfmError(
                f"bag {source}: the folder holds no image ({', '.join(IMAGE_SUFFIXES)}); a bag is not empty"
            )
        return {source.name: files}
    if not source.is_file():
        raise HfmError(f"bag {source}: no such folder or CSV file")
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"bag_id", "path"} <= set(rows[0]):
        raise HfmError(f"bag list {source}: needs a header 'bag_id,path' and one row per image")
    bags: dict[str, list[str]] = {}
    for line, row in enumerate(rows, start=2):
        bag, path = str(row["bag_id"] or "").strip(), str(row["path"] or "").strip()
        if not bag or not path:
            raise HfmError(f"bag list {source}, line {line}: empty bag_id or path")
        full = Path(path) if Path(path).is_absolute() else source.parent / path
        if not full.is_file():
            raise HfmError(f"bag list {source}, line {line}: image {path} does not exist")
        bags.setdefault(bag, []).append(str(full))
    return bags


def embed_files(model: Any, paths: list[str], batch_size: int) -> torch.Tensor:
    """Backbone embeddings ``[N, D]`` of image files, through the backbone's preprocessing."""
    transform = model.backbone.transform
    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([transform(read_image_file(p)) for p in paths[start : start + batch_size]])
            out.append(model.backbone(batch.to(model.device)).float().cpu())
    return torch.cat(out)


def predict_bag_files(
    adapter: str,
    source: str | Path,
    *,
    max_instances: int = 4096,
    top: int = 5,
    batch_size: int = 32,
    **load: Any,
) -> list[dict[str, Any]]:
    """Classify each bag of ``source`` (see the module docstring) with a MIL adapter.

    Returns:
        One row per bag: ``bag``, ``instances`` (images in the bag), ``read`` (images read), ``sampled``,
        ``predicted`` (class name), ``probabilities`` (class name -> probability) and ``attention`` (the ``top``
        most-attended images as ``[path, weight]``).

    Raises:
        HfmError: Not a bag adapter, or bad bag input (see :func:`read_bags`).
    """
    bags = read_bags(source)
    model = load_adapter(adapter, **load)
    if not isinstance(model, MilModel):
        raise HfmError(f"adapter {adapter} classifies single images, not bags: run hfm predict without --bag")
    classes = [str(c) for c in model.classes]
    rows = []
    for bag, paths in bags.items():
        generator = torch.Generator().manual_seed(0)
        keep = paths if len(paths) <= max_instances else [
            paths[int(i)] for i in torch.randperm(len(paths), generator=generator)[:max_instances].sort().values
        ]  # fmt: skip
        pred = predict_bags(model, [embed_files(model, keep, batch_size)], max_instances=max_instances)
        proba, weight = pred.proba[0], pred.weights[0]
        order = weight.argsort()[::-1][:top]
        rows.append(
            {
                "bag": bag,
                "instances": len(paths),
                "read": len(keep),
                "sampled": len(keep) < len(paths),
                "predicted": classes[int(proba.argmax())],
                "probabilities": dict(zip(classes, proba.tolist(), strict=True)),
                "attention": [[keep[int(i)], float(weight[i])] for i in order],
            }
        )
    return rows
