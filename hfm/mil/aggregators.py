"""Bag aggregators: instance embeddings ``[B, N, D]`` with a padding mask ``[B, N]`` in, class logits out.

Every aggregator encodes each instance (linear, ReLU, dropout), pools the encoded instances into one bag vector
with weights over the bag's real instances, and classifies that vector with a linear head. The pooling comes
from torchmil (``AttentionPool`` with gating for ABMIL and CLAM-SB, ``MeanPool``, ``MaxPool``). torchmil's
ready-made models (``ABMIL``, ``CLAM_SB``, ``TransMIL``) predict one binary logit; hfm's tasks have any number of
classes, so the multi-class head and CLAM-SB's instance-clustering loss for C classes are written here, around
torchmil's pooling layers. TransMIL is not offered: torchmil's takes no padding mask, so padded batches would
change its output.

Because the head reads the pooled vector, a bag of one instance gives exactly the instance classifier's logits
(:meth:`Aggregator.instance_logits`), whatever the pooling.
"""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hfm.errors import TunerError

AGGREGATORS: dict[str, type[Aggregator]] = {}


def register(cls: type[Aggregator]) -> type[Aggregator]:
    """Class decorator: make an aggregator available under its ``name``."""
    AGGREGATORS[cls.name] = cls
    return cls


def torchmil_nn() -> ModuleType:
    """``torchmil.nn`` (an optional dependency: ``pip install 'hfm-hub[mil]'``), imported when an aggregator is built."""
    try:
        import torchmil.nn
    except ImportError:
        raise TunerError("the MIL aggregators need torchmil: pip install 'hfm-hub[mil]'") from None
    return torchmil.nn


def full_mask(x: torch.Tensor) -> torch.Tensor:
    """A mask of ones for an unpadded batch ``[B, N, D]``."""
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


class Aggregator(nn.Module):
    """Encode instances, pool them by weights over the real instances, classify the bag.

    Args:
        in_dim: Instance embedding size.
        num_classes: Bag classes.
        hidden_dim: Size of the encoded instances (and of the bag vector).
        att_dim: Size of the attention network (attention aggregators).
        dropout: Dropout on the encoded instances while training.
    """

    name: ClassVar[str] = ""

    def __init__(
        self, in_dim: int, num_classes: int, hidden_dim: int = 128, att_dim: int = 64, dropout: float = 0.25
    ) -> None:
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout))
        self.classifier = nn.Linear(hidden_dim, num_classes)

    def pool(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bag vectors ``[B, H]`` and each instance's weight ``[B, N]`` (sums to one over real instances)."""
        raise NotImplementedError

    def forward_with_attention(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bag logits ``[B, C]`` and instance weights ``[B, N]`` (zero on padding)."""
        mask = full_mask(x) if mask is None else mask.bool()
        h = self.encode(x)
        z, weights = self.pool(h, mask)
        return self.classifier(z), weights.masked_fill(~mask, 0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Bag logits ``[B, C]``."""
        return self.forward_with_attention(x, mask)[0]

    def instance_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, C]`` of each instance ``[N, D]`` taken as a bag of its own."""
        return self.classifier(self.encode(x))

    def auxiliary_loss(self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """An extra training loss of the aggregator (none by default)."""
        return x.new_zeros(())


@register
class MeanAggregator(Aggregator):
    """Mean pooling (every real instance weighs ``1 / n``): the baseline attention has to beat."""

    name = "mean"

    def __init__(self, in_dim: int, num_classes: int, **kwargs: float) -> None:
        super().__init__(in_dim, num_classes, **kwargs)  # type: ignore[arg-type]
        self.pooling = torchmil_nn().MeanPool()

    def pool(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = mask.float() / mask.float().sum(dim=1, keepdim=True)
        return self.pooling(h, mask), weights


@register
class MaxAggregator(Aggregator):
    """Max pooling per feature; an instance's weight is the share of features whose maximum it holds."""

    name = "max"

    def __init__(self, in_dim: int, num_classes: int, **kwargs: float) -> None:
        super().__init__(in_dim, num_classes, **kwargs)  # type: ignore[arg-type]
        self.pooling = torchmil_nn().MaxPool()

    def pool(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.pooling(h, mask)
        winner = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).argmax(dim=1)  # [B, H]
        weights = F.one_hot(winner, num_classes=h.shape[1]).float().mean(dim=1)  # [B, N]
        return z, weights


@register
class ABMIL(Aggregator):
    """Gated attention pooling (Ilse et al., 2018): softmax weights from a gated two-layer network."""

    name = "abmil"

    def __init__(
        self, in_dim: int, num_classes: int, hidden_dim: int = 128, att_dim: int = 64, dropout: float = 0.25
    ) -> None:
        super().__init__(in_dim, num_classes, hidden_dim=hidden_dim, att_dim=att_dim, dropout=dropout)
        self.attention = torchmil_nn().AttentionPool(
            in_dim=hidden_dim, att_dim=att_dim, act="tanh", gated=True
        )

    def pool(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, scores = self.attention(h, mask, return_att=True)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
        return z, weights


@register
class CLAMSB(ABMIL):
    """CLAM single-branch (Lu et al., 2021): gated attention plus an instance-clustering loss.

    For a bag of class ``y`` the ``k_sample`` most-attended instances are taught to be "in class" and the least
    attended "out of class" by the instance classifier of ``y``; the most-attended instances are "out of class"
    for the other classes' instance classifiers. This is CLAM's loss for C classes with cross-entropy (torchmil's
    CLAM_SB has it for the binary case only).
    """

    name = "clam_sb"
    k_sample: ClassVar[int] = 4
    instance_weight: ClassVar[float] = 0.3

    def __init__(
        self, in_dim: int, num_classes: int, hidden_dim: int = 128, att_dim: int = 64, dropout: float = 0.25
    ) -> None:
        super().__init__(in_dim, num_classes, hidden_dim=hidden_dim, att_dim=att_dim, dropout=dropout)
        self.instance_classifiers = nn.ModuleList(nn.Linear(hidden_dim, 2) for _ in range(num_classes))

    def auxiliary_loss(self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.encode(x)
        _, weights = self.pool(h, mask)
        losses: list[torch.Tensor] = []
        for b in range(x.shape[0]):
            real = int(mask[b].sum())
            k = min(self.k_sample, real // 2)
            if k == 0:
                continue
            order = weights[b, :real].argsort(descending=True)
            top, bottom = h[b, order[:k]], h[b, order[-k:]]
            for c, classifier in enumerate(self.instance_classifiers):
                if c == int(labels[b]):
                    inputs = torch.cat([top, bottom])
                    targets = torch.cat([torch.ones(k), torch.zeros(k)]).long().to(x.device)
                else:
                    inputs, targets = top, torch.zeros(k, dtype=torch.long, device=x.device)
                losses.append(F.cross_entropy(classifier(inputs), targets))
        if not losses:
            return x.new_zeros(())
        return self.instance_weight * torch.stack(losses).mean()


def build_aggregator(name: str, in_dim: int, num_classes: int, **params: float) -> Aggregator:
    """The aggregator registered as ``name`` (``abmil``, ``clam_sb``, ``mean``, ``max``)."""
    return AGGREGATORS[name](in_dim, num_classes, **params)  # type: ignore[arg-type]
