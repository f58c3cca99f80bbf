"""What a bag run writes besides its predictions: the weight of every instance, and pictures of what it looked at.

``attention.csv`` has one row per instance read (bag id, instance id, weight, rank within the bag; weights of a
bag sum to one). ``bags/<bag>.png`` shows, for the most confidently predicted bags, the most- and least-attended
instances with their weights, because people want to see what the model looked at.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_attention(
    path: Path, bag_ids: Sequence[str], instance_ids: Sequence[Sequence[str]], weights: Sequence[np.ndarray]
) -> None:
    """``attention.csv``: ``bag_id,instance_id,attention,rank`` (rank 1: the most-attended instance of its bag)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["bag_id", "instance_id", "attention", "rank"])
        for bag, ids, weight in zip(bag_ids, instance_ids, weights, strict=True):
            ranks = np.empty(len(weight), dtype=np.int64)
            ranks[np.argsort(-weight, kind="stable")] = np.arange(1, len(weight) + 1)
            for instance, w, rank in zip(ids, weight, ranks, strict=True):
                writer.writerow([bag, instance, repr(float(w)), int(rank)])


def _as_rgb(image: Any) -> np.ndarray:
    """An image as a numpy array matplotlib shows (grey stays 2-D)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        array = ((array - low) / (high - low or 1.0) * 255).astype(np.uint8)
    return array


def safe_name(bag_id: str) -> str:
    """A file name for a bag id (anything but letters, digits, ``-``, ``_``, ``.`` becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", bag_id)[:100] or "bag"


def bag_picture(
    path: Path,
    title: str,
    read: Callable[[int], Any],
    weight: np.ndarray,
    per_row: int = 6,
) -> None:
    """A PNG with the ``per_row`` most-attended instances on top and the least-attended below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(-weight, kind="stable")
    n = min(per_row, len(order))
    rows = [("most attended", order[:n]), ("least attended", order[::-1][:n])]
    fig, axes = plt.subplots(2, n, figsize=(max(1.8 * n, 4.5), 4.2), squeeze=False)
    for r, (label, chosen) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(chosen):
                j = int(chosen[c])
                ax.imshow(_as_rgb(read(j)), cmap="gray")
                ax.set_title(f"{weight[j]:.3f}", fontsize=8)
        axes[r][0].text(
            -0.1, 0.5, label, transform=axes[r][0].transAxes, rotation=90, va="center", ha="right"
        )
    fig.suptitle(title, fontsize=7, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_bag_pictures(
    folder: Path,
    bag_ids: Sequence[str],
    proba: np.ndarray,
    classes: Sequence[str],
    readers: Sequence[Callable[[int], Any]],
    weights: Sequence[np.ndarray],
    *,
    top: int = 8,
    labels: np.ndarray | None = None,
) -> list[Path]:
    """One PNG per bag for the ``top`` most confidently predicted bags; returns the files written."""
    if top <= 0 or len(bag_ids) == 0:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    confidence = proba.max(axis=1)
    written = []
    for b in np.argsort(-confidence, kind="stable")[:top]:
        pred = classes[int(proba[b].argmax())]
        truth = f", label {classes[int(labels[b])]}" if labels is not None else ""
        title = (
            f"bag {bag_ids[b]}: predicted {pred} ({confidence[b]:.2f}){truth}; {len(weights[b])} instances"
        )
        path = folder / f"{safe_name(bag_ids[b])}.png"
        bag_picture(path, title, readers[b], weights[b])
        written.append(path)
    return written
