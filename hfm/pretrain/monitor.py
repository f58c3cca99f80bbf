"""The no-harm gate and the collapse detector: k-NN on the labelled train split, and embedding spread.

Only the train split is read. The score is a leave-one-out cosine k-NN vote (each image is classified by its
``k`` nearest other train images, weighted by ``exp(similarity / 0.07)`` as in DINO's k-NN evaluation),
reported as balanced accuracy so that a collapsed backbone that predicts the majority class scores at chance.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone
    from hfm.data.splits import Subset
    from hfm.pretrain.config import MonitorBlock

KNN_TEMPERATURE = 0.07


def knn_score(embeddings: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Leave-one-out cosine k-NN balanced accuracy."""
    x = F.normalize(embeddings.float(), dim=-1)
    n = len(x)
    classes = int(labels.max()) + 1
    sims = x @ x.T
    sims.fill_diagonal_(-float("inf"))
    k = min(k, n - 1)
    top, idx = sims.topk(k, dim=-1)
    weights = (top / KNN_TEMPERATURE).exp()
    votes = torch.zeros(n, classes).scatter_add_(1, labels[idx], weights)
    pred = votes.argmax(-1)
    recalls = [float((pred[labels == c] == c).float().mean()) for c in range(classes) if (labels == c).any()]
    return float(np.mean(recalls))


def spread(embeddings: torch.Tensor) -> float:
    """Std per dimension of the L2-normalised embeddings times sqrt(dim): 1 when isotropic, 0 when collapsed."""
    x = F.normalize(embeddings.float(), dim=-1)
    return float(x.std(dim=0).mean() * x.shape[1] ** 0.5)


def monitor_subset(train: Subset, block: MonitorBlock, seed: int) -> Subset | None:
    """A stratified, seeded subsample of the labelled train images (``None`` with fewer than 2 classes)."""
    labels = train.labels
    if len(np.unique(labels)) < 2:
        return None
    if len(train) <= block.max_images:
        return train
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        take = max(1, round(block.max_images * len(members) / len(labels)))
        chosen.extend(rng.choice(members, size=min(take, len(members)), replace=False).tolist())
    return train.take(sorted(chosen))


@dataclasses.dataclass
class Check:
    """One monitor reading."""

    epoch: int
    knn: float
    spread: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def measure(backbone: Backbone, subset: Subset, block: MonitorBlock, *, epoch: int, precision: str) -> Check:
    """Embed the monitor images with ``backbone`` (no cache: the weights change every epoch) and score them."""
    from hfm.embeddings import extract

    was_training = backbone.training
    x = extract(backbone, subset, cache=False, precision=precision, progress=False)
    backbone.train(was_training)
    labels = torch.as_tensor(subset.labels, dtype=torch.long)
    return Check(epoch=epoch, knn=knn_score(x, labels, block.k), spread=spread(x))


def verdict(start: Check, now: Check, block: MonitorBlock) -> str | None:
    """Why training must stop (collapse, or harm beyond the tolerance), or ``None``."""
    if now.spread < block.min_spread:
        return (
            f"embeddings collapsed at epoch {now.epoch} (spread {now.spread:.4f} < {block.min_spread}): "
            "lower the learning rate, warm the heads up longer (adapt.head_warmup_epochs) or adapt fewer blocks"
        )
    if now.knn < start.knn - block.tolerance:
        return (
            f"no-harm gate: k-NN balanced accuracy {now.knn:.3f} at epoch {now.epoch} fell below the starting "
            f"backbone's {start.knn:.3f} by more than {block.tolerance}: the best state was kept; lower the "
            "learning rate or adapt fewer blocks"
        )
    return None
